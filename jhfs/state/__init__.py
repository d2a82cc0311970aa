"""Job state and caches between the client and the filesystem nodes.

The listing and status cache (registry), the log files (logs), the verified,
content-addressed file cache (files), and what they share: single-flight
calls (flight) and the cache directory's layout and temporary files (cachedir).
"""
