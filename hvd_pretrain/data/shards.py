"""Finding shards, giving each rank its own, reading the manifest and checking files. No TensorFlow.

Rank assignment: the shard list, sorted with numbers in names compared as
numbers (`tf_examples.tfrecord-2` before `-10`, hvd_pretrain.numbered), is dealt
round-robin, rank r taking files[r::world]. It depends only on the file names,
the rank and the world size, so it is disjoint, covers every shard exactly once, and comes out the
same after a restart. A restart with a different world size deals the same
sorted list again for the new size: still disjoint and complete, but a rank
does not continue where a rank of the old job stopped; the epoch starts over.
"""

import glob
import os

from hvd_pretrain.errors import DataError
from hvd_pretrain.data.tfrecord import decode_example, iter_records
from hvd_pretrain.numbered import numbered_sorted
from hvd_pretrain.rundir import MANIFEST, read_json



def looks_like_shard(name):
    """*.tfr, or any name holding "tfrecord" (Google's default is tf_examples.tfrecord[-N])."""
    if name.startswith(".") or name.endswith((".tmp", ".json")):
        return False
    return "tfrecord" in name.lower() or name.endswith(".tfr")


def read_manifest(data_dir, missing_ok=False):
    """The manifest.json of a data dir (None when missing and missing_ok)."""
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.exists(path):
        if missing_ok:
            return None
        raise DataError("no %s in %s; make the data with hvd-data create --out=%s" % (MANIFEST, data_dir, data_dir))
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise DataError("%s is not valid JSON; re-create the data with hvd-data create" % path)
    return manifest


def list_shards(data_dir_or_glob):
    """Shard files of a data dir (its manifest's shards, else *.tfrecord*), a glob, a file or a list,
    sorted with the numbers in their names compared as numbers."""
    if isinstance(data_dir_or_glob, (list, tuple)):
        found = numbered_sorted({f for item in data_dir_or_glob for f in list_shards(item)})
        if not found:
            raise DataError("no shard files in the given list")
        return found
    spec = str(data_dir_or_glob)
    if "," in spec and not os.path.exists(spec):
        return list_shards([s for s in spec.split(",") if s.strip()])
    if os.path.isdir(spec):
        manifest = read_manifest(spec, missing_ok=True)
        if manifest and manifest.get("shards") is not None:
            files = [os.path.join(spec, s["file"]) for s in manifest["shards"]]
            missing = [f for f in files if not os.path.isfile(f)]
            if missing:
                raise DataError("shard %s listed in %s is missing; re-create the data with hvd-data create"
                                % (missing[0], os.path.join(spec, MANIFEST)))
            files = numbered_sorted(files)
        else:
            files = numbered_sorted(os.path.join(spec, n) for n in os.listdir(spec)
                                    if looks_like_shard(n) and os.path.isfile(os.path.join(spec, n)))
        if not files:
            raise DataError("no TFRecord shards in %s; make them with hvd-data create --out=%s" % (spec, spec))
        return files
    if glob.has_magic(spec):
        files = numbered_sorted(f for f in glob.glob(spec) if os.path.isfile(f))
        if not files:
            raise DataError("no file matches %s; check the pattern" % spec)
        return files
    if os.path.isfile(spec):
        return [spec]
    raise DataError("TFRecord data not found: %s; pass a data dir, a glob or files" % spec)


def shards_for_rank(files, rank, world):
    """This rank's shards: files[rank::world] of the list in numbered order. Disjoint, covering, deterministic."""
    files = numbered_sorted(files)
    rank, world = int(rank), int(world)
    if world < 1 or not 0 <= rank < world:
        raise DataError("rank %d is outside a world of size %d" % (rank, world))
    if len(files) < world:
        raise DataError("only %d shard files for %d ranks: every rank needs one; re-create the data with "
                        "--num_shards=%d or more" % (len(files), world, world))
    return files[rank::world]


def verify_shards(files, manifest=None, check_crc=True):
    """Check every record of every file (framing and CRC-32C); return {file: record count}.

    Raises DataError naming the first damaged file. With a manifest, counts must match it,
    and the first record of each file must carry the manifest's features and lengths.
    """
    expected_counts, expected_features = {}, None
    if manifest:
        expected_counts = {s["file"]: s["instances"] for s in manifest.get("shards", [])}
        expected_features = manifest.get("features")
    counts = {}
    for path in files:
        if not os.path.isfile(path):
            raise DataError("shard not found: %s; re-create the data with hvd-data create" % path)
        count = 0
        for record in iter_records(path, check_crc=check_crc):
            if count == 0:
                _check_first_record(path, record, expected_features)
            count += 1
        if count == 0:
            raise DataError("shard %s holds no records; re-create the data with hvd-data create" % path)
        want = expected_counts.get(os.path.basename(path))
        if want is not None and want != count:
            raise DataError("shard %s holds %d records but its manifest says %d; re-create the data"
                            % (path, count, want))
        counts[path] = count
    return counts


def _check_first_record(path, record, expected_features):
    try:
        values = decode_example(record)
    except Exception as e:  # protobuf raises its own DecodeError
        raise DataError("shard %s: first record is not a tf.train.Example (%s); re-create the data"
                        % (path, type(e).__name__)) from None
    if not expected_features:
        return
    for name, (_, length) in expected_features.items():
        if name not in values:
            raise DataError("shard %s lacks feature %s; was it made with another tool or config?" % (path, name))
        if len(values[name]) != length:
            raise DataError("shard %s: feature %s has length %d, manifest says %d; re-create the data"
                            % (path, name, len(values[name]), length))
