# Filters for the tunnel_routes role: bring a tunnel table (wanted, or read from GET /tunnels) to the one
# shape tunneld returns, so that comparing two tables says whether a PUT would change anything.
import ipaddress
import json

READ_ONLY = ("ActiveClient", "OpenConnections", "Problems")
INTEGER_KEYS = ("ListenPort", "BackEndPort", "ProxyProtocolVersion")


def _canonical_address(value):
    # tunneld prints addresses in canonical form; so does Python, except for IPv4-mapped IPv6 addresses.
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return value
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return "::ffff:" + str(addr.ipv4_mapped)
    return str(addr)


def _normalize_tunnel(tunnel):
    if not isinstance(tunnel, dict):
        return tunnel  # left for tunneld to refuse with its own message
    out = {}
    for key, value in tunnel.items():
        if key in READ_ONLY or value is None:  # null means absent, as in the API
            continue
        if key in INTEGER_KEYS and isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # inventory files give strings
        out[key] = value
    out.setdefault("ListenAddress", "0.0.0.0")
    if isinstance(out["ListenAddress"], str):
        out["ListenAddress"] = _canonical_address(out["ListenAddress"])
    out.setdefault("BackupClientIdentifiers", [])
    out.setdefault("HaProxyProxyProtocol", False)
    if out["HaProxyProxyProtocol"] is True:
        out.setdefault("ProxyProtocolVersion", 1)
    out.setdefault("ListenHostnameGlob", "*")
    if isinstance(out["ListenHostnameGlob"], str):
        out["ListenHostnameGlob"] = out["ListenHostnameGlob"].lower()  # tunneld keeps globs in lower case
    return out


def tunnel_routes_normalize(tunnels):
    """The table in GET /tunnels' shape: defaults written out, read-only keys dropped."""
    if tunnels is None:
        return []
    if not isinstance(tunnels, list):
        return tunnels
    return [_normalize_tunnel(t) for t in tunnels]


def tunnel_routes_same(wanted, current):
    """True when two normalised tables hold the same tunnels (order does not route anything)."""
    def key(table):
        if not isinstance(table, list):
            return [json.dumps(table, sort_keys=True)]
        return sorted(json.dumps(t, sort_keys=True) for t in table)
    return key(wanted) == key(current)


def tunnel_routes_problems(tunnels):
    """Every "Problems" line of a GET /tunnels (or PUT) answer, prefixed with its tunnel's address and port."""
    out = []
    for t in tunnels if isinstance(tunnels, list) else []:
        if isinstance(t, dict):
            where = "%s:%s" % (t.get("ListenAddress"), t.get("ListenPort"))
            out.extend("tunnel %s: %s" % (where, p) for p in t.get("Problems") or [])
    return out


def tunnel_routes_text(tunnels):
    """A normalised table as text for a diff: one tunnel per line, keys sorted, tunnels in listener order."""
    if not isinstance(tunnels, list):
        return json.dumps(tunnels, sort_keys=True) + "\n"
    lines = sorted(json.dumps(t, sort_keys=True) for t in tunnels)
    return "".join(line + "\n" for line in lines)


class FilterModule(object):
    def filters(self):
        return {
            "tunnel_routes_normalize": tunnel_routes_normalize,
            "tunnel_routes_same": tunnel_routes_same,
            "tunnel_routes_problems": tunnel_routes_problems,
            "tunnel_routes_text": tunnel_routes_text,
        }
