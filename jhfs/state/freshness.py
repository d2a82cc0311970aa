"""How fresh what the mount shows is, and how often it asks: every such number.

They depend on each other (what the kernel caches adds to what jhfs caches),
so they live together; each says why it is what it is.
"""

from __future__ import annotations

# -- jobs: the listing, status, info.json, files ---------------------------------

# What a running job shows is at most this old: the listing (readdir, which
# the kernel never caches) and a job's files, whose attributes the kernel may
# reuse for KERNEL_TIMEOUT after the registry's copy was read; so that copy
# may be at most FRESHNESS - KERNEL_TIMEOUT old. Content that changes is read
# with direct I/O, never cut at a stale size.
FRESHNESS = 2.0
# libfuse's high-level API has one attr/entry timeout for all paths (finished
# jobs' pages are kept across opens per file instead, with keep_cache; a
# followed log's attributes are invalidated as it grows). Measured with
# `scripts/bench` (10,000 jobs):
# - 0.8 s: `ls -l jobs/` again right after the first one is answered by the
#   kernel (0.05 s instead of 0.42 s: 10,000 lookups).
# - 0: with default_permissions every path walk asks for the attributes of
#   each directory on the way: more round trips for everything.
KERNEL_TIMEOUT = 0.8
JOB_TTL = FRESHNESS - KERNEL_TIMEOUT  # a running job's copy in the registry
LISTING_TTL = FRESHNESS
# A name the server says does not exist is believed this long: probing names
# (a shell's completion, `ls jobs/typo`) costs one request each, not one per try.
NEGATIVE_TTL = 10.0
# A failed request's error is given again this long without asking: the
# kernel repeats a failed operation (revalidate, then lookup; readahead, then
# read), and the repeat fails at once instead of running the retries again.
FAILURE_MEMORY = 3.0
# While the server cannot be reached, jobs/ shows the listing saved last and
# asks the server again at most this often: each ask costs the client's
# retries (some 1.6 s against a refused connection, up to -o timeout against
# one that does not answer), which the `ls` in between are spared. Once it
# answers, jobs/ is current again at the next ask.
OFFLINE_RETRY = 10.0

# -- following a running job's log (state.logfollow) ----------------------------

# A log just opened was brought up to date by the open itself: following
# begins this much later, so that a `cat` of a running log (open, read,
# close) costs no follow at all.
FOLLOW_START_DELAY = 0.1
# The fallback polls: quick while lines keep coming, backing off to this
# while the job is quiet.
POLL_INTERVAL_ACTIVE = 0.25
POLL_INTERVAL_QUIET = 1.0
# An open within this long of the follower's last news (a stream frame,
# keep-alives included, or a poll) needs no request: the log is that fresh.
CURRENT_FOR = 2.0
# After a refused or dropped stream, stream again after this long, doubling
# up to the cap; a stream that lived STREAM_HEALTHY seconds resets it.
STREAM_RETRY_FIRST = 2.0
STREAM_RETRY_MAX = 60.0
STREAM_HEALTHY = 30.0
# Following stops at the last close, within 2 s: its task is cancelled at
# once, a stream's websocket waits at most logstream.CLOSE_TIMEOUT (0.5 s) for
# the server's close frame, and a poll already sent is the last.

# -- after a ctl command (nodes.ctl) ---------------------------------------------

# A kill is answered before the job has stopped (the server signals its
# process, which then ends). So that `status` read right after the kill says
# what the server says then, the write waits until the job has left
# Submitted/Running: it asks for the job at once and again after each of
# these pauses (8 requests within 4.5 s at most), and gives up sooner at the
# operation's deadline or Ctrl-C. A job that takes longer to stop shows its
# end within FRESHNESS of the server saying so.
KILL_SETTLE_PAUSES = (0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0)
