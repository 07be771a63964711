"""splunkd wire formats: Atom feeds (splunklib's default parser) and ``output_mode=json`` documents."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

GENERATOR_VERSION = "9.4.1"
GENERATOR_BUILD = "e3bdab203ac8"
UPDATED = "2026-01-01T00:00:00+00:00"


class Entry:
    """One entity as splunkd describes it: name, its collection path, ACL and content."""

    def __init__(
        self,
        name: str,
        collection_path: str,
        content: Dict[str, Any],
        acl: Optional[Dict[str, Any]] = None,
        author: str = "nobody",
        links: Optional[Dict[str, str]] = None,
    ):
        self.name = name
        self.collection_path = collection_path.rstrip("/")
        self.content = content
        self.acl = acl
        self.author = author
        self.extra_links = links

    @property
    def href(self) -> str:
        return f"{self.collection_path}/{quote(self.name, safe='')}"

    def links(self) -> Dict[str, str]:
        if self.extra_links is not None:
            return self.extra_links
        return {"alternate": self.href, "list": self.href, "edit": self.href, "remove": self.href}


def acl(app: str, owner: str = "nobody", sharing: str = "app", modifiable: bool = True) -> Dict[str, Any]:
    return {
        "app": app,
        "can_change_perms": "1",
        "can_list": "1",
        "can_share_app": "1",
        "can_share_global": "1",
        "can_share_user": "0",
        "can_write": "1",
        "modifiable": "1" if modifiable else "0",
        "owner": owner,
        "perms": {"read": ["*"], "write": ["admin", "sc_admin"]},
        "removable": "1" if modifiable else "0",
        "sharing": sharing,
    }


def _xml_value(value: Any, indent: str) -> str:
    if isinstance(value, dict):
        inner = "".join(
            f"{indent}  <s:key name={quoteattr(str(k))}>{_xml_value(v, indent + '    ')}</s:key>\n"
            for k, v in value.items()
        )
        return f"\n{indent}<s:dict>\n{inner}{indent}</s:dict>\n{indent[:-2]}"
    if isinstance(value, (list, tuple)):
        inner = "".join(f"{indent}  <s:item>{_xml_value(v, indent + '    ')}</s:item>\n" for v in value)
        return f"\n{indent}<s:list>\n{inner}{indent}</s:list>\n{indent[:-2]}"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return escape(str(value))


def atom_entry(base_uri: str, entry: Entry, indent: str = "  ") -> str:
    content = dict(entry.content)
    if entry.acl is not None:
        content["eai:acl"] = entry.acl
    links = "".join(
        f"{indent}  <link href={quoteattr(href)} rel={quoteattr(rel)}/>\n" for rel, href in entry.links().items()
    )
    return (
        f"{indent}<entry>\n"
        f"{indent}  <title>{escape(entry.name)}</title>\n"
        f"{indent}  <id>{escape(base_uri + entry.href)}</id>\n"
        f"{indent}  <updated>{UPDATED}</updated>\n"
        f"{links}"
        f"{indent}  <author>\n{indent}    <name>{escape(entry.author)}</name>\n{indent}  </author>\n"
        f'{indent}  <content type="text/xml">{_xml_value(content, indent + "    ")}</content>\n'
        f"{indent}</entry>\n"
    )


def atom_feed(
    base_uri: str, title: str, path: str, entries: List[Entry], total: Optional[int] = None, offset: int = 0
) -> str:
    total = len(entries) if total is None else total
    body = "".join(atom_entry(base_uri, entry) for entry in entries)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!--This is to override browser formatting; see server.conf[httpServer] to disable. -->\n"
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">\n'
        f"  <title>{escape(title)}</title>\n"
        f"  <id>{escape(base_uri + path)}</id>\n"
        f"  <updated>{UPDATED}</updated>\n"
        f'  <generator build="{GENERATOR_BUILD}" version="{GENERATOR_VERSION}"/>\n'
        "  <author>\n    <name>Splunk</name>\n  </author>\n"
        f'  <link href="{escape(path)}/_new" rel="create"/>\n'
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:itemsPerPage>{max(len(entries), 30)}</opensearch:itemsPerPage>\n"
        f"  <opensearch:startIndex>{offset}</opensearch:startIndex>\n"
        "  <s:messages/>\n"
        f"{body}"
        "</feed>\n"
    )


def _json_content(content: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in content.items():
        if key == "disabled" and isinstance(value, str) and value in ("0", "1", "true", "false"):
            out[key] = value in ("1", "true")
        else:
            out[key] = value
    return out


def json_feed(base_uri: str, path: str, entries: List[Entry], total: Optional[int] = None, offset: int = 0) -> str:
    total = len(entries) if total is None else total
    doc = {
        "links": {"create": f"{path}/_new"},
        "origin": base_uri + path,
        "updated": UPDATED,
        "generator": {"build": GENERATOR_BUILD, "version": GENERATOR_VERSION},
        "entry": [
            {
                "name": entry.name,
                "id": base_uri + entry.href,
                "updated": UPDATED,
                "links": entry.links(),
                "author": entry.author,
                "acl": entry.acl or {},
                "content": _json_content(entry.content),
            }
            for entry in entries
        ],
        "paging": {"total": total, "perPage": 30, "offset": offset},
        "messages": [],
    }
    return json.dumps(doc)


def xml_messages(text: str, msg_type: str = "ERROR") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <messages>\n'
        f"    <msg type={quoteattr(msg_type)}>{escape(text)}</msg>\n  </messages>\n</response>\n"
    )


def json_messages(text: str, msg_type: str = "ERROR") -> str:
    return json.dumps({"messages": [{"type": msg_type, "text": text}]})
