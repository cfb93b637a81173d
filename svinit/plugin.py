"""pytest plugin (entry point ``pytest11``): fixtures for booted svinit containers and VMs."""
