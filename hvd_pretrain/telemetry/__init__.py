"""Watching runs: everything behind `hvd-monitor`. Reads run directories only.

  jsonl.py        follow a growing JSONL file (offsets kept, backlogs read in chunks)
  series.py       float columns per metric; min/max downsampling for charts
  run.py          one run directory, refreshed incrementally (metrics, ranks, job.json, plan.json)
  store.py        every run under a runs directory; background refresher
  status.py       a run's state (running ... stalled, failed) and one-line summary
  api.py          JSON payloads of the pages: overview, run, series, stragglers, comparison
  scaling.py      weak-scaling efficiency table
  prom.py         /metrics in Prometheus text format
  system.py       host CPU, memory, disk, network (psutil) and GPUs (NVML, optional)
  server.py       the web server (standard library) and its routes
  report.py       self-contained HTML report
  top.py          terminal table
  tensorboard.py  the TensorBoard command for runs
  synthetic.py    run directories in the trainer's format, for benchmarks and tests
  static/         pages, scripts and the bundled uPlot charting library

Never imports TensorFlow or Horovod.
"""
