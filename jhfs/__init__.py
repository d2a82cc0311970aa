"""jhfs: a FUSE filesystem that mounts a JuliaHub account's batch jobs as directories."""

__version__ = "0.1.0"
