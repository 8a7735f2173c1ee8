"""``latent-explorer plugins``: the installed model plugins and their settings."""

from __future__ import annotations

import argparse
import json

from explorer.cli.common import _one_line
from explorer.cli.signals import _Signals


def cmd_plugins(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    """List the installed model plugins: each is loaded and checked (explorer.plugins); a
    broken one is one line saying why. Exit 0 whatever they are: the listing worked."""
    from explorer.plugins import GROUP, discover

    infos = discover()
    if args.json:
        for info in infos:
            plugin = info.plugin if info.ok else None
            print(json.dumps({
                "name": info.name, "status": "ok" if info.ok else "broken", "distribution": info.distribution,
                "version": info.version, "description": plugin.description if plugin is not None else "",
                "error": info.error,
                "settings": [{"name": f.name, "type": f.type, "default": f.default, "min": f.min, "max": f.max,
                              "choices": list(f.choices), "help": f.help} for f in (plugin.schema if plugin else ())],
            }), flush=True)
        return 0
    if not infos:
        print(f"no model plugins are installed (a package adds one through the entry-point group {GROUP}; "
              "see the README, \"Model plugins\")")
        return 0
    for info in infos:
        print(_one_line(info.line()))
        for f in info.plugin.schema if info.ok and info.plugin is not None else ():
            bounds = f" from {f.min:g}" if f.min is not None else ""
            bounds += f" to {f.max:g}" if f.max is not None else ""
            kind = f"one of {', '.join(f.choices)}" if f.type == "choice" else f.type + bounds
            print(_one_line(f"    --set {f.name}=  {kind}, default {json.dumps(f.default)}"
                            + (f": {f.help}" if f.help else "")))
    return 0
