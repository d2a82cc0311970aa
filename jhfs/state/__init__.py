"""Job state and caches between the client and the filesystem nodes.

The listing and status cache (registry) with its copy on disk for when the
server is down (saved), the log files (logs) and their
following (logfollow), the verified, content-addressed file cache (files)
with its downloads (download), its size and eviction (cachesize) and the
partial downloads kept to resume (partial); and what they share:
single-flight calls (flight), waiting for requests on a user operation's
behalf (waiting), the mount's bounded worker pools (pools), and the cache
directory's layout and temporary files (cachedir).
"""
