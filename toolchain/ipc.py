"""Reading the ``reqresp`` program's lines: request/response through a server environment over
a channel of the user library (userland/include/ipc.h, docs/restart.md "Split IPC").

* ``reqresp_verdict(lines)``: the server's, the clients' and the final line, parsed.
* ``reqresp_exact(v)``: every request answered exactly once, both sides agree, nothing failed.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional

FINAL = re.compile(r"^reqresp: final (.*)$")
SERVER = re.compile(r"^reqresp: server (.*)$")
CLIENT = re.compile(r"^reqresp: client (\d+) (.*)$")


def _numbers(text: str) -> Dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", text)}


def reqresp_verdict(lines: List[str]) -> Optional[Dict[str, object]]:
    """``final`` (its fields, ``checksum`` as a hex string), ``server`` and ``clients`` (lists of
    fields), ``fails`` (the ``reqresp: FAIL`` lines); None if the final line never came."""
    final_line = next((m for line in lines if (m := FINAL.match(line))), None)
    if final_line is None:
        return None
    final: Dict[str, object] = dict(_numbers(final_line.group(1)))
    final["checksum"] = dict(re.findall(r"(\w+)=([0-9a-f]+)", final_line.group(1))).get("checksum")
    server = next((_numbers(m.group(1)) for line in lines if (m := SERVER.match(line))), {})
    clients = [_numbers(m.group(2)) for line in lines if (m := CLIENT.match(line))]
    return {"final": final, "line": final_line.group(0), "server": server, "clients": clients,
            "fails": [line for line in lines if line.startswith("reqresp: FAIL")]}


def reqresp_exact(v: Optional[Dict[str, object]]) -> bool:
    """Every request answered once and received once; the two sides' counts agree."""
    if v is None:
        return False
    f, server, clients = v["final"], v["server"], v["clients"]
    n = f["requests"]
    return (not v["fails"] and f["answered"] == n and f["received"] == n and f["lost"] == 0
            and f["doubled"] == 0 and f["wrong"] == 0 and server.get("answered") == n
            and server.get("refused") == 0 and sum(c.get("received", 0) for c in clients) == n
            and sum(c.get("sent", 0) for c in clients) == n)
