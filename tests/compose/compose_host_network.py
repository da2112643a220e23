"""docker-compose 1.29, the only compose on the CI machines, with one check lifted.

CI runs the stack on the host's network (no bridge network exists there). Docker accepts a container
on the host network with published ports and ignores the ports (the container already listens on the
host), and so does compose v2 on a Pi; compose 1.29's Docker library refuses the combination instead.
This runs compose 1.29 with the ports dropped for host-network containers only, exactly what Docker
would do with them. Run with Debian's python3, where Debian's docker-compose lives.
"""

import sys
from typing import Any

from docker.types import containers

_host_config_init = containers.HostConfig.__init__


def _init_dropping_ports_on_host_network(self: Any, *args: Any, **kwargs: Any) -> None:
    if kwargs.get("network_mode") == "host":
        kwargs["port_bindings"] = None
    _host_config_init(self, *args, **kwargs)


containers.HostConfig.__init__ = _init_dropping_ports_on_host_network

from compose.cli.main import main  # noqa: E402  (after the patch, which it must see)

sys.exit(main())
