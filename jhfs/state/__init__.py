"""Job state and caches between the client and the filesystem nodes.

The listing and status cache (registry), the log files (logs) and the
verified, content-addressed file cache (files).
"""
