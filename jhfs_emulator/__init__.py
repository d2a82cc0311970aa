"""jhfs_emulator: a local JuliaHub-compatible server for demos, tests and benchmarks.

It speaks the jobs wire protocol that jhfs.client speaks, with every quirk,
runs each job as a real local process, and has an admin API under /_emulator/
(see jhfs_emulator.admin). It imports nothing from `jhfs`.

Where the real service may answer either way, the emulator picks one:
- extend_job_time_limit: a malformed jobname is a 200 `{"success": false,
  "message": "Invalid jobname ..."}`; a well-formed unknown one is a 403; a bad
  `extendby` (not a whole number >= 1) is a 400 `{"success": false, ...}`.
- extend_job_time_limit of a job already over: a 200 `{"success": true}` that
  changes nothing. The official client knows no other `success: false` than
  "Invalid jobname", and its test double of the service answers success for
  every job it knows, whatever its status; nothing describes a refusal.
- kill_job of a job already over: a 200 `{"status": true, ...}`, and the job
  keeps the status it ended with. The official client's test double answers
  the same but also rewrites the status to Stopped; that double has no job
  life cycle (every kill there takes effect at once, which the client's own
  tests against the live service say it no longer does), while on the service a
  done status is final (Submitted -> Running -> one of the done states).
- get_logs: `start_time`/`end_time` must be the reference message's timestamp
  in unix milliseconds, and `event_id` needs one of them; anything else is a
  200 `{"success": false, "reason": ...}`. Unknown jobs are a 403.
- get_logs with both `start_time` and `end_time`: a 400 with the plain text
  `both start_time and end_time provided`; without `jobname`: a 400 with the
  plain text `jobname missing` (not JSON). Both are the official client's test
  double's answers (the client itself never sends either request, so it
  documents no other).
- The identity check: GET /api/v1. An older server has none (404): the client
  then asks POST /v1/graphql for the user (jhfs_emulator.graphql); a fault with
  status 404 on `api_v1` makes the emulator such a server. A refused token is a
  401 everywhere here; the service sometimes answers /api/v1 with a 500
  instead, and Hasura a 200 with an error whose code is `invalid-jwt` (status
  faults, with a `body` for the latter, send those).
- /api/rest and /v1/graphql requests without the Hasura headers are answered,
  logged and counted (`missing_hasura_headers` in the stats).
- Downloads need `filetype`; a file still uploading is a 404.
"""
