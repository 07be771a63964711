import time
t=time.time()
from tests.knowledge import behaviour as b
w=b.world(); print("events", w.events, round(time.time()-t,1)); t=time.time()
o=b.simulate(); print("sim", round(time.time()-t,1))
for r in b.table(): print(r)
print(o.max_read)
