"""Stand-in for ``splunk.clilib`` (see ``cli_common`` and ``bundle_paths``)."""
