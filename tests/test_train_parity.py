"""Training parity with transformers: our optimizer steps against PyTorch's, step for step.

Our tiny BERT (and ALBERT with sharing `all`) is exported with `export_hf` and loaded by
transformers' BertForPreTraining / AlbertForPreTraining, so both sides start from the same
weights. Dropout is off. Both then train the same batches for 32 optimizer steps:

    ours    AccumulatingStep (the trainer's optimizer step: 2 micro-batches of 8, losses normalised
            by the step's global target counts, clip after the reduction) with make_optimizer /
            make_schedule from a TrainConfig: AdamW, linear warmup then linear decay.
    theirs  one batch of 16 through the transformers model's own loss, torch.nn.utils.clip_grad_norm_,
            torch.optim.AdamW with the same no-decay groups (biases, LayerNorm) and a LambdaLR holding
            our schedule (docs/training.md, "Matching transformers", lists where defaults differ).

The loss before every step and the final weights agree to 1e-4 relative. The micro-batches hold
different numbers of masked tokens, so a loss normalised per micro-batch would not match, and the
clip norm is chosen so that some steps are clipped and some are not.
"""

import dataclasses
import os
import time

import numpy as np
import pytest

from hvd_pretrain.models import build_pretrainer, preset
from hvd_pretrain.train.config import TrainConfig

torch = pytest.importorskip("torch", reason="pip install torch==2.13.0 transformers (test extra)")
transformers = pytest.importorskip("transformers")

SEQ, PREDS, VOCAB = 32, 6, 200
MICRO, ACCUM, STEPS = 8, 2, 32
TOL = 1e-4
TRAIN = TrainConfig(accum_steps=ACCUM, per_rank_batch=MICRO, num_train_steps=STEPS, warmup_steps=6,
                    learning_rate=2e-3, end_learning_rate=1e-4, weight_decay=0.01, clip_norm=2.0,
                    max_seq_length=SEQ, max_predictions_per_seq=PREDS)
NO_DECAY = ("bias", "LayerNorm", "layer_norm")  # transformers' names of what our DEFAULT_EXCLUDE matches


def batches(seed):
    """STEPS global batches of MICRO x ACCUM examples; 1..PREDS masked tokens per example."""
    rng = np.random.RandomState(seed)
    out = []
    n = MICRO * ACCUM
    for _ in range(STEPS):
        lengths = rng.randint(12, SEQ + 1, size=n)
        mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
        # A learnable text: Zipf-distributed tokens (ranked by id), so the losses fall within a few steps.
        ids = (5 + np.minimum(rng.zipf(1.3, size=(n, SEQ)) - 1, VOCAB - 6)).astype(np.int32)
        ids *= mask
        ids[:, 0] = 2
        segments = (np.arange(SEQ)[None, :] >= (lengths // 2)[:, None]).astype(np.int32) * mask
        positions = np.zeros((n, PREDS), np.int32)
        labels = np.zeros((n, PREDS), np.int32)
        weights = np.zeros((n, PREDS), np.float32)
        for i in range(n):
            k = rng.randint(1, PREDS + 1)
            pos = np.sort(rng.choice(np.arange(1, lengths[i]), size=k, replace=False))
            positions[i, :k], labels[i, :k], weights[i, :k] = pos, ids[i, pos], 1.0
            ids[i, pos] = 4  # the [MASK] id of this toy vocabulary
        out.append(dict(input_ids=ids, input_mask=mask, segment_ids=segments, masked_lm_positions=positions,
                        masked_lm_ids=labels, masked_lm_weights=weights,
                        next_sentence_labels=rng.randint(0, 2, size=(n, 1)).astype(np.int32)))
    return out


def train_ours(config, data, init_dir, final_dir):
    """Export the initial weights, train with the trainer's optimizer step, export the result."""
    from hvd_pretrain.export import export_hf
    from hvd_pretrain.tfcompat import keras, tf
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    from hvd_pretrain.train.optimization import make_optimizer, make_schedule

    keras.utils.set_random_seed(3)
    model = build_pretrainer(config).build_for(2, SEQ, PREDS)
    export_hf(model, init_dir)
    optimizer = make_optimizer(TRAIN, make_schedule(TRAIN))
    stepper = AccumulatingStep(model, optimizer, LocalCommunicator(), ACCUM, TRAIN.clip_norm).build()
    losses, norms = [], []
    for batch in data:
        micro = [{k: tf.constant(v[i * MICRO:(i + 1) * MICRO]) for k, v in batch.items()} for i in range(ACCUM)]
        info = stepper.step(micro)
        assert not info["skipped"]
        losses.append(info["loss"])
        norms.append(info["grad_norm"])
    assert int(optimizer.iterations.numpy()) == STEPS
    export_hf(model, final_dir)
    return np.array(losses), np.array(norms)


def lr_factor(step):
    """Our WarmupPolynomialDecay (power 1) as a fraction of the peak, for torch's LambdaLR."""
    warmup, peak, end = TRAIN.resolved_warmup_steps(), TRAIN.learning_rate, TRAIN.end_learning_rate
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, STEPS - warmup))
    return ((peak - end) * (1.0 - progress) + end) / peak


def torch_inputs(batch):
    """Our features -> transformers' inputs: MLM labels [B, S] with -100 wherever nothing is predicted."""
    labels = np.full(batch["input_ids"].shape, -100, np.int64)
    for i in range(labels.shape[0]):
        real = batch["masked_lm_weights"][i] > 0
        labels[i, batch["masked_lm_positions"][i][real]] = batch["masked_lm_ids"][i][real]
    return dict(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long),
                labels=torch.tensor(labels))


def train_theirs(architecture, data, init_dir):
    """The HF/PyTorch recipe: one big batch, model loss, clip_grad_norm_, AdamW + LambdaLR."""
    torch.manual_seed(0)
    model = getattr(transformers, architecture).from_pretrained(init_dir)
    model.train()  # dropout probabilities are 0 in the exported config
    params = dict(model.named_parameters())  # tied weights appear once
    groups = [{"params": [p for n, p in params.items() if not any(x in n for x in NO_DECAY)],
               "weight_decay": TRAIN.weight_decay},
              {"params": [p for n, p in params.items() if any(x in n for x in NO_DECAY)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=TRAIN.learning_rate, betas=(TRAIN.adam_beta1, TRAIN.adam_beta2),
                                  eps=TRAIN.adam_epsilon)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    sentence = "next_sentence_label" if architecture.startswith("Bert") else "sentence_order_label"
    losses, norms = [], []
    for batch in data:
        inputs = torch_inputs(batch)
        inputs[sentence] = torch.tensor(batch["next_sentence_labels"][:, 0], dtype=torch.long)
        loss = model(**inputs).loss
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN.clip_norm)))
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return np.array(losses), np.array(norms), {k: v.detach().numpy() for k, v in model.state_dict().items()}


# The attention key bias adds the same score to every key of a query, which softmax ignores: its exact
# gradient is 0, and both frameworks move it only by rounding noise (scaled up by Adam's normalisation).
ZERO_GRADIENT = ("attention.self.key.bias", "attention.key.bias")


def weight_differences(final_dir, theirs):
    """(name -> max |ours - theirs| / max |theirs| per tensor, largest |value| of a zero-gradient tensor)."""
    from safetensors.numpy import load_file
    ours = load_file(os.path.join(final_dir, "model.safetensors"))
    out, noise = {}, 0.0
    for name, value in ours.items():
        ref = theirs[name]
        if name.endswith(ZERO_GRADIENT):
            noise = max(noise, float(np.max(np.abs(value))), float(np.max(np.abs(ref))))
            continue
        out[name] = float(np.max(np.abs(value - ref)) / np.max(np.abs(ref)))
    return out, noise


def check_parity(tmp_path, config, architecture):
    data = batches(seed=11)
    counts = [[int(b["masked_lm_weights"][i * MICRO:(i + 1) * MICRO].sum()) for i in range(ACCUM)] for b in data]
    assert any(a != b for a, b in counts), "micro-batches must hold different numbers of masked tokens"
    t0 = time.time()
    ours, our_norms = train_ours(config, data, str(tmp_path / "init"), str(tmp_path / "final"))
    t1 = time.time()
    theirs, their_norms, weights = train_theirs(architecture, data, str(tmp_path / "init"))
    t2 = time.time()
    loss_rel = np.abs(ours - theirs) / np.abs(theirs)
    diffs, noise = weight_differences(str(tmp_path / "final"), weights)
    worst = max(diffs, key=diffs.get)
    print("%s: max relative loss difference %.2e (step %d), max relative weight difference %.2e (%s);"
          " key biases (gradient 0) within %.1e; loss %.4f -> %.4f; %d of %d steps clipped; ours %.1f s, theirs %.1f s"
          % (architecture, loss_rel.max(), int(loss_rel.argmax()), diffs[worst], worst, noise, theirs[0], theirs[-1],
             int((their_norms > TRAIN.clip_norm).sum()), STEPS, t1 - t0, t2 - t1))
    # The run must exercise what it claims to compare: learning, clipped and unclipped steps.
    assert theirs[-1] < theirs[0] - 0.1
    assert (their_norms > TRAIN.clip_norm).any() and (their_norms < TRAIN.clip_norm).any()
    np.testing.assert_allclose(our_norms, their_norms, rtol=1e-3)
    assert loss_rel.max() <= TOL, "step %d: loss %r (ours) vs %r (transformers)" % (
        int(loss_rel.argmax()), ours[loss_rel.argmax()], theirs[loss_rel.argmax()])
    assert diffs[worst] <= TOL, "%s differs by %.3g relative after %d steps" % (worst, diffs[worst], STEPS)
    assert noise < 1e-5, "a key bias moved by %.3g: its gradient is not 0" % noise
    # The weights moved far more than the tolerance: the comparison is not of two unchanged copies.
    from safetensors.numpy import load_file
    init = load_file(str(tmp_path / "init" / "model.safetensors"))
    moved = max(float(np.max(np.abs(weights[k] - v))) for k, v in init.items())
    assert moved > 100 * TOL


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bert_training_matches_transformers(tmp_path):
    config = preset("tiny", vocab_size=VOCAB, max_position_embeddings=SEQ, hidden_dropout=0.0,
                    attention_dropout=0.0)
    check_parity(tmp_path, config, "BertForPreTraining")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_albert_training_matches_transformers(tmp_path):
    config = dataclasses.replace(
        preset("albert-tiny", vocab_size=VOCAB, max_position_embeddings=SEQ, sharing="all"),
        num_layers=3, hidden_size=128, num_heads=2, intermediate_size=256, embedding_size=64)
    check_parity(tmp_path, config, "AlbertForPreTraining")
