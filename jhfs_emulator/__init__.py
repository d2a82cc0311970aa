"""jhfs_emulator: a local JuliaHub-compatible server for demos, tests and benchmarks.

It speaks the jobs wire protocol of ../shared/juliahub-api.md with every quirk,
runs each job as a real local process, and has an admin API under /_emulator/.
It imports nothing from `jhfs`.
"""
