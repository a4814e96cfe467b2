"""Computes one optimizer step's allreduced gradient for a fixed global batch.

Run as (the three layouts of the same 4b examples):
    horovodrun -np 2 python accum_probe.py --out D --accum 2 --batch b
    python accum_probe.py --out D --accum 4 --batch b
    python accum_probe.py --out D --accum 1 --batch 4b
Each rank writes D/rank<r>.npz with the initial-weights digest, the gradients
and the weights after one plain-SGD step, computed twice from the same start: by
`compute_gradients` + `apply` (one allreduce after backward) and by the trainer's
`run` (the allreduce in small groups overlapping the last micro-batch's backward).

`--also D2:ACCUM:BATCH[:PRECISION]` (repeatable) computes more layouts in the same
process, each from a fresh model built with the same seed (one TensorFlow start-up
for several layouts); D2/rank<r>.npz is written as if by a separate run.
"""

import argparse
import os

import numpy as np

from hvd_pretrain.models import build_pretrainer
from hvd_pretrain.models.config import preset
from hvd_pretrain.tfcompat import keras, tf
from hvd_pretrain.train import distributed
from hvd_pretrain.train.accumulate import AccumulatingStep, DynamicLossScale, HorovodCommunicator

SEQ, PREDS, VOCAB, GLOBAL = 32, 6, 300, 16


def global_batch():
    """16 fixed examples whose masked-token counts differ (1..6 per example)."""
    rng = np.random.RandomState(7)
    ids = rng.randint(5, VOCAB, size=(GLOBAL, SEQ)).astype(np.int32)
    lengths = rng.randint(12, SEQ + 1, size=GLOBAL)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
    ids = ids * mask
    ids[:, 0] = 2
    segments = (np.arange(SEQ)[None, :] >= (lengths // 2)[:, None]).astype(np.int32) * mask
    positions = np.zeros((GLOBAL, PREDS), np.int32)
    labels = np.zeros((GLOBAL, PREDS), np.int32)
    weights = np.zeros((GLOBAL, PREDS), np.float32)
    for i in range(GLOBAL):
        n = 1 + i % PREDS
        pos = np.sort(rng.choice(np.arange(1, lengths[i]), size=n, replace=False))
        positions[i, :n] = pos
        labels[i, :n] = ids[i, pos]
        weights[i, :n] = 1.0
    nsp = (np.arange(GLOBAL) % 2).astype(np.int32)
    return dict(input_ids=ids, input_mask=mask, segment_ids=segments, masked_lm_positions=positions,
                masked_lm_ids=labels, masked_lm_weights=weights, next_sentence_labels=nsp)


def _layout(text):
    """OUT:ACCUM:BATCH[:PRECISION] -> argparse.Namespace like the main layout's."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("fp32", "fp16")):
        raise argparse.ArgumentTypeError("--also wants OUT:ACCUM:BATCH[:fp32|fp16], got %r" % text)
    return argparse.Namespace(out=parts[0], accum=int(parts[1]), batch=int(parts[2]),
                              precision=parts[3] if len(parts) == 4 else "fp32", inject_inf_rank=-1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--accum", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--inject_inf_rank", type=int, default=-1, help="this rank's loss becomes inf")
    p.add_argument("--also", type=_layout, action="append", default=[],
                   help="OUT:ACCUM:BATCH[:PRECISION]: one more layout computed in this process")
    args = p.parse_args()
    hvd = distributed.init_horovod(threads=1)
    for i, layout in enumerate([args] + args.also):
        if i:
            keras.backend.clear_session()  # layer names and random-op counters start over, as in a new process
        probe(hvd, layout)


def probe(hvd, args):
    keras.mixed_precision.set_global_policy("mixed_float16" if args.precision == "fp16" else "float32")
    rank, size = hvd.rank(), hvd.size()
    assert args.accum * args.batch * size == GLOBAL, "layout must cover the 16 examples exactly"
    data = global_batch()
    per_rank = args.accum * args.batch
    mine = {k: v[rank * per_rank:(rank + 1) * per_rank] for k, v in data.items()}
    micro = [{k: tf.constant(v[i * args.batch:(i + 1) * args.batch]) for k, v in mine.items()}
             for i in range(args.accum)]

    keras.utils.set_random_seed(1234)
    config = preset("tiny", vocab_size=VOCAB, max_position_embeddings=SEQ, hidden_dropout=0.0,
                    attention_dropout=0.0)
    model = build_pretrainer(config)
    model.loss_sums(micro[0], training=False)
    optimizer = keras.optimizers.SGD(learning_rate=0.5)
    optimizer.build(model.trainable_variables)
    distributed.broadcast_state(hvd, model, optimizer)
    init_digest = distributed.weights_digest(model)
    loss_scale = DynamicLossScale() if args.precision == "fp16" else None
    if rank == args.inject_inf_rank:
        # An overflow on this rank only: its embeddings blow up, so its loss and gradients are not finite.
        emb = model.trainable_variables[0]
        emb.assign(tf.fill(emb.shape, float("inf")))
    initial = [v.numpy() for v in model.trainable_variables]
    stepper = AccumulatingStep(model, optimizer, HorovodCommunicator(hvd), args.accum, clip_norm=0.0,
                               loss_scale=loss_scale)
    scale_before = float(loss_scale.scale.numpy()) if loss_scale else 1.0
    if args.inject_inf_rank >= 0:
        info = stepper.step(micro)
        grads = [tf.zeros_like(v) for v in model.trainable_variables]
    else:
        grads, info = stepper.compute_gradients(micro)
        stepper.apply(grads)
        info["skipped"] = False
    split = [v.numpy() for v in model.trainable_variables]
    fused = {}
    if args.inject_inf_rank < 0:
        # The trainer's path: the last micro-batch's backward and the allreduce in one function, the
        # gradients reduced in many small groups (0.01 MB) while backward runs. Same start, same step.
        for v, w in zip(model.trainable_variables, initial):
            v.assign(w)
        AccumulatingStep(model, optimizer, HorovodCommunicator(hvd), args.accum, clip_norm=0.0,
                         loss_scale=loss_scale, bucket_mb=0.01).build(micro[0]).run(micro)
        fused = {"fused_weight_%d" % i: v.numpy() for i, v in enumerate(model.trainable_variables)}
    os.makedirs(args.out, exist_ok=True)
    names = [v.name for v in model.trainable_variables]
    np.savez(os.path.join(args.out, "rank%d.npz" % rank), init_digest=np.array(init_digest),
             names=np.array(names), loss=np.array(info["loss"]), skipped=np.array(info["skipped"]),
             iterations=np.array(int(optimizer.iterations.numpy())), scale_before=np.array(scale_before),
             scale_after=np.array(float(loss_scale.scale.numpy()) if loss_scale else 1.0),
             **{"grad_%d" % i: g.numpy() for i, g in enumerate(grads)},
             **{"weight_%d" % i: w for i, w in enumerate(split)}, **fused)


if __name__ == "__main__":
    main()
