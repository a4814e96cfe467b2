"""The one error hierarchy of hvd-pretrain.

Everything a user can get wrong (a flag, a file, a checkpoint, a dataset) raises a
UsageError. Its message is one line that names the flag, file or value and says
what to do; a command-line tool prints it as ``error: <message>`` on stderr and
exits with code 2 (hvd_pretrain/cli/main.py), which the job supervisor reads as
"a configuration error: do not restart". Anything else is a bug or a crash and
keeps its traceback.

    UsageError
      ConfigError        model, training or batch-plan settings (flags, flagfiles, presets)
      DataError          corpora, vocabularies, shards and manifests
      CheckpointError    run checkpoints and public checkpoints
        CheckpointMismatch   made by another model configuration
        CheckpointDamaged    files that do not match what was written
      TrainingError      a run that cannot go on (non-finite training)
      ExportError        writing transformers directories
      PlanError          the capacity planner's inputs
      JobError           hvd-job: names, starting and stopping jobs
      MonitorError       hvd-monitor's inputs
"""

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem the user can fix; str(error) is always one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message=""):
        lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
        super().__init__("; ".join(lines))


class ConfigError(UsageError, ValueError):
    """Model, training or batch-plan settings that cannot work."""


class DataError(UsageError):
    """Bad data input: a corpus, vocabulary, shard or manifest."""


class CheckpointError(UsageError):
    """A checkpoint that cannot be used as asked."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint made by a different model configuration."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint whose files do not match what was written."""


class TrainingError(UsageError):
    """A run that cannot go on, e.g. step after step skipped for non-finite gradients."""


class ExportError(UsageError):
    """A model that cannot be written in the requested format."""


class PlanError(UsageError, ValueError):
    """Capacity-planner inputs that cannot be planned."""


class JobError(UsageError):
    """hvd-job: a job name, start or stop that cannot be done."""


class MonitorError(UsageError):
    """hvd-monitor: runs or options it cannot show."""


def quoted(error):
    """The first line of another library's exception, to quote inside a UsageError's message."""
    text = (getattr(error, "message", None) or str(error) or type(error).__name__).strip()
    return text.splitlines()[0] if text else type(error).__name__
