"""Data creation across the ranks of an MPI or Horovod launch, coordinated through the output directory.

    horovodrun -np 4 -H a:2,b:2 hvd-data create --input_files=... --vocab=... --out=/shared/data
    mpirun -np 4 hvd-data create ...

The rank and world size come from the launcher's environment (Horovod's HOROVOD_RANK /
HOROVOD_SIZE, Open MPI's OMPI_COMM_WORLD_RANK / _SIZE, MPICH's and Intel MPI's PMI_RANK /
PMI_SIZE); nothing is initialised, so no MPI or Horovod library is needed by the data tool.
Every rank plans the same chunks from the same input and makes the chunks i with
i % world_size == rank, so the shards are the ones a single process makes, byte for byte.
Rank 0 writes manifest.json once the progress record of every chunk is in `.progress/`.

The ranks meet only through files in --out, which must therefore be one directory that
every rank sees (a shared filesystem: NFS, Lustre, GPFS, ...; or one machine). Each waiting
rank polls the directory; a rank that fails writes `.progress/failed-rank-<r>` (with the
launcher's id of the launch, so a later launch ignores it) so the others stop with its
message instead of waiting; the launchers also end the rest when any rank exits with an error.
"""

import os
import time
from dataclasses import dataclass

from hvd_pretrain.errors import DataError
from hvd_pretrain.rundir import read_json, write_json_atomic

POLL_SECONDS = 0.2
_RANK_SIZE = (("HOROVOD_RANK", "HOROVOD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
              ("PMI_RANK", "PMI_SIZE"))
_LOCAL_SIZE = ("HOROVOD_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")
# Set to the same value in every process of one launch and to another in the next launch.
_LAUNCH_IDS = (("PMIX_NAMESPACE",), ("OMPI_MCA_ess_base_jobid",), ("OMPI_MCA_orte_ess_jobid",),
               ("HOROVOD_GLOO_RENDEZVOUS_ADDR", "HOROVOD_GLOO_RENDEZVOUS_PORT"))


@dataclass(frozen=True)
class World:
    """This process's rank among `size` data-creation processes (0 of 1 when not launched)."""

    rank: int = 0
    size: int = 1
    local_size: int = 1
    launch: str = ""  # the launcher's id of this launch ("" when it gives none)

    @classmethod
    def from_env(cls, environ=None):
        env = os.environ if environ is None else environ
        for rank_key, size_key in _RANK_SIZE:
            if rank_key in env and size_key in env:
                try:
                    rank, size = int(env[rank_key]), int(env[size_key])
                except ValueError:
                    raise DataError("%s=%r / %s=%r are not numbers; launch with horovodrun or mpirun"
                                    % (rank_key, env[rank_key], size_key, env[size_key])) from None
                if not 0 <= rank < size:
                    raise DataError("%s=%d is not below %s=%d" % (rank_key, rank, size_key, size))
                local = next((int(env[k]) for k in _LOCAL_SIZE if str(env.get(k, "")).isdigit()), 1)
                launch = next((":".join(env[k] for k in keys) for keys in _LAUNCH_IDS
                               if all(env.get(k) for k in keys)), "")
                return cls(rank, size, max(1, min(local, size)), launch)
        return cls()

    def owns(self, index):
        return index % self.size == self.rank


def _failure_path(progress_dir, rank):
    return os.path.join(progress_dir, "failed-rank-%d" % rank)


def clear_failures(progress_dir, world):
    """Remove this rank's failure mark of an earlier run."""
    path = _failure_path(progress_dir, world.rank)
    if os.path.exists(path):
        os.remove(path)


def mark_failed(progress_dir, world, message):
    """Tell the other ranks of this launch that this one stopped, and why."""
    try:
        os.makedirs(progress_dir, exist_ok=True)
        write_json_atomic(_failure_path(progress_dir, world.rank),
                          {"rank": world.rank, "launch": world.launch, "error": str(message)})
    except OSError:
        pass


def wait_for(ready, progress_dir, world, what, tick=None):
    """Poll `ready()` until it is true; a DataError when another rank marked itself failed.

    tick: called on every poll (progress display). Returns ready()'s value.
    """
    while True:
        value = ready()
        if value:
            return value
        for rank in range(world.size):
            failed = read_json(_failure_path(progress_dir, rank)) if rank != world.rank else None
            # A mark of an earlier launch says nothing about this one (without a launch id: trust it).
            if failed and failed.get("launch", "") == world.launch:
                raise DataError("rank %d stopped (%s), so rank %d stops waiting for %s"
                                % (rank, failed.get("error", "unknown error"), world.rank, what))
        if tick:
            tick()
        time.sleep(POLL_SECONDS)
