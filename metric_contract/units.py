"""Units of the contract.

Memory in every metric is MB, binary, as HTCondor reports it; TPV's `mem` (the job's request)
is GB. The broker converts once, at the edge, with this factor; the simulator uses the same one
so that simulated and real pools compare.
"""

from __future__ import annotations

MB_PER_GB = 1024
