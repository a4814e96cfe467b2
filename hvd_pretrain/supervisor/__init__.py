"""Keep a training command alive for days: detach, restart, detect hangs, explain failures.

Nothing here imports TensorFlow or Horovod, so `hvd-job` starts in a fraction of a
second. The supervisor talks to training only through the run directory
(hvd_pretrain.rundir): it reads metrics.jsonl as a heartbeat and writes job.json.

Modules:
  names       job names and where their run directories live
  jobfile     job.json (state, history) and the lock that marks a job as running
  proctree    process groups, subreaper, signalling a whole process tree
  heartbeat   metrics.jsonl as a heartbeat (step advance, stall)
  outcome     what an exit means: finished, config error, crash, signal; the error line
  supervise   the supervisor loop (restart with backoff, hang detection, stop)
  logind      systemd-logind facts: KillUserProcesses, linger, session scope
  launch      start the supervisor detached (new session, systemd-run --user, or tmux)
  control     status rows and stopping a job
  logfiles    rotated log files and following them
  doctor      checks that explain why a long run would die, with the fix for each
"""
