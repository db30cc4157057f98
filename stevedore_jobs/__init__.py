"""Stevedore's package: the ``stevedore`` CLI and its Python client (``client.py``), which need only
requests and pydantic, and the commands that run the services (host mode, migrations, the image's
entrypoint), which need the ``[server]`` extra."""
