"""jhfs_emulator: a local JuliaHub-compatible server for demos, tests and benchmarks.

It speaks the jobs wire protocol of ../shared/juliahub-api.md with every quirk,
runs each job as a real local process, and has an admin API under /_emulator/
(see jhfs_emulator.admin). It imports nothing from `jhfs`.

Where the real service may answer either way, the emulator picks one:
- extend_job_time_limit: a malformed jobname is a 200 `{"success": false,
  "message": "Invalid jobname ..."}`; a well-formed unknown one is a 403; a bad
  `extendby` (not a whole number >= 1) is a 400 `{"success": false, ...}`.
- get_logs: `start_time`/`end_time` must be the reference message's timestamp
  in unix milliseconds, and `event_id` needs exactly one of them; anything
  else is a 200 `{"success": false, "reason": ...}`. Unknown jobs are a 403.
- /api/rest requests without the Hasura headers are answered, logged and
  counted (`missing_hasura_headers` in the stats).
- Downloads need `filetype`; a file still uploading is a 404.
"""
