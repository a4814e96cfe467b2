"""Training-time randomness (dropout masks, ELECTRA's generator samples) is keyed statelessly by
(run seed, optimizer step, micro-batch index, rank) inside the trainer's traced micro-step: new masks
every step, micro-batch and rank, the same masks whenever the same step is computed again (a resume),
with and without XLA, and the same masks when a block is recomputed in backward."""

import numpy as np
import pytest

from batches import synthetic_batch
from hvd_pretrain.models.config import preset

SEQ, PREDS, VOCAB, BATCH = 16, 3, 100, 4


def features(seed=0):
    return synthetic_batch(BATCH, SEQ, PREDS, VOCAB, seed)


def model_for(name, dropout=0.1, recompute="none"):
    from hvd_pretrain.models import build_pretrainer
    from hvd_pretrain.tfcompat import keras
    keras.utils.set_random_seed(4)
    config = preset(name, vocab_size=VOCAB, max_position_embeddings=SEQ, hidden_dropout=dropout,
                    attention_dropout=dropout)
    model = build_pretrainer(config, recompute=recompute)
    model.loss_sums(features(), training=False)
    return model


def stepper_for(model, accum, rank=0, jit=False):
    """An AccumulatingStep whose optimizer never moves the weights (SGD, learning rate 0): only the random
    draws can change a step's losses."""
    from hvd_pretrain.tfcompat import keras
    from hvd_pretrain.train.accumulate import AccumulatingStep, LocalCommunicator
    comm = LocalCommunicator()
    comm.rank = rank
    optimizer = keras.optimizers.SGD(learning_rate=0.0)
    optimizer.build(model.trainable_variables)  # as the trainer does: no variable is created inside a step
    return AccumulatingStep(model, optimizer, comm, accum, clip_norm=0.0, jit_compile=jit, seed=5).build(features())


def losses(info):
    return np.array([info["losses"][k] for k in sorted(info["losses"])])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,jit", [("tiny", False), pytest.param("tiny", True, marks=pytest.mark.slow),
                                      pytest.param("electra-tiny", False, marks=pytest.mark.slow)])
def test_masks_change_with_step_micro_batch_and_rank_and_repeat_for_the_same_ones(name, jit):
    model = model_for(name)
    f, g = features(0), features(1)
    stepper = stepper_for(model, accum=2, jit=jit)
    first = losses(stepper.step([f, g]))   # optimizer step 0
    second = losses(stepper.step([f, g]))  # step 1: the same batches and weights, other masks
    assert np.max(np.abs(first - second)) > 1e-4, (first, second)
    stepper.optimizer.iterations.assign(0)  # step 0 again, as a resumed run computes it
    again = losses(stepper.step([f, g]))
    np.testing.assert_array_equal(again, first)

    # Micro-batch 1 is not masked like micro-batch 0: the mean of [f, f] is not f's own loss.
    stepper.optimizer.iterations.assign(0)
    doubled = losses(stepper.step([f, f]))
    stepper.reconfigure(1, 1)
    stepper.optimizer.iterations.assign(0)
    alone = losses(stepper.step([f]))
    assert np.max(np.abs(alone - doubled)) > 1e-4, (alone, doubled)
    # Another rank at the same step and micro-batch draws other masks.
    stepper.comm.rank = 1
    stepper.optimizer.iterations.assign(0)
    other_rank = losses(stepper.step([f]))
    assert np.max(np.abs(alone - other_rank)) > 1e-4, (alone, other_rank)
    # The step, micro-batch and rank are read when the traced micro-step runs, not baked in when it is traced.
    for traced in (stepper._micro_step, stepper._last_micro_step, stepper._single_micro_step):
        assert traced.experimental_get_tracing_count() == 1, traced.python_function.__name__
    print("MEASURED %s%s: step 0 %s, step 1 %s, step 0 again %s, rank 1 %s"
          % (name, " (XLA)" if jit else "", first, second, again, other_rank))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_without_dropout_the_steps_agree():
    """The control: with dropout off a BERT step's losses depend on the weights and batches only."""
    stepper = stepper_for(model_for("tiny", dropout=0.0), accum=1)
    a = losses(stepper.step([features(0)]))
    stepper.comm.rank = 1
    np.testing.assert_array_equal(a, losses(stepper.step([features(0)])))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["tiny", pytest.param("electra-tiny", marks=pytest.mark.slow)])
def test_recomputed_blocks_draw_the_forward_masks_inside_the_micro_step(name):
    plain, recomputed = model_for(name), model_for(name, recompute="block")
    recomputed.set_weights(plain.get_weights())
    micro = [features(0), features(1)]
    grads = []
    for model in (plain, recomputed):
        stepper = stepper_for(model, accum=2)
        stepper.optimizer.iterations.assign(7)
        grads.append([g.numpy() for g in stepper.compute_gradients(micro)[0]])
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*grads))
    print("MEASURED %s, dropout 0.1, through the micro-step: recompute max |grad diff| %.3g" % (name, diff))
    assert diff <= 1e-6


def test_step_seed_is_a_pure_function_of_its_inputs():
    from hvd_pretrain.models import ops
    seeds = {(s, m, r): tuple(ops.step_seed(9, s, m, r).numpy()) for s in (0, 1) for m in (0, 1) for r in (0, 1)}
    assert len(set(seeds.values())) == 8
    assert tuple(ops.step_seed(9, 1, 0, 1).numpy()) == seeds[(1, 0, 1)]
    assert tuple(ops.step_seed(10, 1, 0, 1).numpy()) != seeds[(1, 0, 1)]  # the run seed counts too
