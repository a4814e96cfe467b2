"""GPU and interconnect presets for the capacity planner.

Peak FLOP/s, memory and bandwidths are the vendors' datasheet figures (dense,
no sparsity). Achievable fractions and latencies are planning assumptions and
are printed with every prediction.
"""

from dataclasses import dataclass

from hvd_pretrain.errors import PlanError  # noqa: F401 - raised here and by estimate

GIB = 1024 ** 3
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class GPU:
    name: str
    peak: dict  # precision -> dense FLOP/s used for that precision's matmuls
    memory_bytes: int
    hbm_bytes_per_sec: float
    nvlink_bytes_per_sec: float  # per GPU, per direction
    pcie_bytes_per_sec: float  # x16 link, per direction
    generation: str  # volta, ampere, hopper
    source: str


_V100_SRC = "NVIDIA Tesla V100 datasheet (SXM2): 125 TFLOP/s fp16 tensor, 15.7 TFLOP/s fp32, 900 GB/s HBM2, NVLink 300 GB/s"
_A100_SRC = ("NVIDIA A100 datasheet (SXM4): 312 TFLOP/s fp16/bf16 tensor, 156 TFLOP/s TF32, "
             "1555 GB/s (40GB) / 2039 GB/s (80GB) HBM2e, NVLink 600 GB/s")
_H100_SRC = ("NVIDIA H100 datasheet (SXM5): 989 TFLOP/s fp16/bf16 tensor dense, 495 TFLOP/s TF32 dense, "
             "3.35 TB/s HBM3, NVLink 900 GB/s")

GPUS = {
    "V100-16G": GPU("V100-16G", {"fp16": 125e12, "fp32": 15.7e12}, 16 * GIB, 900e9, 150e9, 16e9, "volta", _V100_SRC),
    "V100-32G": GPU("V100-32G", {"fp16": 125e12, "fp32": 15.7e12}, 32 * GIB, 900e9, 150e9, 16e9, "volta", _V100_SRC),
    # TensorFlow runs fp32 matmuls on TF32 tensor cores on Ampere and later by default
    # (tf.config.experimental.enable_tensor_float_32_execution), so "fp32" uses the TF32 peak.
    "A100-40G": GPU("A100-40G", {"fp16": 312e12, "bf16": 312e12, "fp32": 156e12}, 40 * GIB, 1555e9, 300e9, 32e9,
                    "ampere", _A100_SRC),
    "A100-80G": GPU("A100-80G", {"fp16": 312e12, "bf16": 312e12, "fp32": 156e12}, 80 * GIB, 2039e9, 300e9, 32e9,
                    "ampere", _A100_SRC),
    "H100": GPU("H100", {"fp16": 989e12, "bf16": 989e12, "fp32": 495e12}, 80 * GIB, 3350e9, 450e9, 64e9,
                "hopper", _H100_SRC),
}


@dataclass(frozen=True)
class Link:
    name: str
    bytes_per_sec: float  # line rate per direction: per GPU (intra-node) or per NIC (inter-node)
    achievable: float  # fraction of line rate an NCCL/MPI allreduce reaches as bus bandwidth
    latency_sec: float  # per ring step
    nics_per_node: int = 1
    source: str = ""

    @property
    def effective_bytes_per_sec(self):
        """Bus bandwidth of the whole link (all NICs of a node for inter-node links)."""
        return self.bytes_per_sec * self.achievable * self.nics_per_node


INTRA_NODE = ("nvlink", "pcie")
_INTRA_SRC = ("line rates from the GPU datasheets; achievable fraction 0.8 and 5 us per step (NVLink), "
              "0.7 and 10 us (PCIe) are planning assumptions in line with nccl-tests bus bandwidth on DGX systems")


def intra_node_link(gpu, name):
    if name not in INTRA_NODE:
        raise PlanError("interconnect=%r is unknown; choose one of %s" % (name, ", ".join(INTRA_NODE)))
    if name == "nvlink":
        return Link("nvlink-" + gpu.generation, gpu.nvlink_bytes_per_sec, 0.8, 5e-6, 1, _INTRA_SRC)
    return Link("pcie-" + gpu.generation, gpu.pcie_bytes_per_sec, 0.7, 10e-6, 1, _INTRA_SRC)


_IB_SRC = "InfiniBand line rates (EDR 100, HDR 200, NDR 400 Gb/s per port); 0.9 achievable and 10 us per step assumed"
_ETH_SRC = "Ethernet line rate; TCP/sockets allreduce assumed to reach 0.7 of it with 50 us per step"
_NETWORKS = {
    "ib-edr": Link("ib-edr", 12.5e9, 0.9, 10e-6, 1, _IB_SRC),
    "ib-hdr": Link("ib-hdr", 25e9, 0.9, 10e-6, 1, _IB_SRC),
    "ib-ndr": Link("ib-ndr", 50e9, 0.9, 10e-6, 1, _IB_SRC),
    "eth-10g": Link("eth-10g", 1.25e9, 0.7, 50e-6, 1, _ETH_SRC),
    "eth-25g": Link("eth-25g", 3.125e9, 0.7, 50e-6, 1, _ETH_SRC),
    "eth-100g": Link("eth-100g", 12.5e9, 0.7, 50e-6, 1, _ETH_SRC),
}
# "infiniband": the DGX system of the GPU's generation (DGX-1: 4x EDR; DGX A100: 8x HDR; DGX H100: 8x NDR).
_DGX_RAILS = {"volta": ("ib-edr", 4), "ampere": ("ib-hdr", 8), "hopper": ("ib-ndr", 8)}
NETWORKS = ("infiniband", "ethernet") + tuple(_NETWORKS)


def inter_node_link(gpu, name, nics_per_node=None):
    """The inter-node network; `infiniband` means the DGX rails of the GPU's generation,
    `ethernet` one 25 GbE port per node."""
    if name not in NETWORKS:
        raise PlanError("network=%r is unknown; choose one of %s" % (name, ", ".join(NETWORKS)))
    if nics_per_node is not None and int(nics_per_node) < 1:
        raise PlanError("nics_per_node=%r must be a positive integer" % nics_per_node)
    if name == "infiniband":
        base, rails = _DGX_RAILS[gpu.generation]
        link = _NETWORKS[base]
        source = link.source + "; rails per node as in the DGX of this GPU generation"
    else:
        link, rails = _NETWORKS["eth-25g" if name == "ethernet" else name], 1
        source = link.source
    rails = int(nics_per_node) if nics_per_node is not None else rails
    return Link(link.name, link.bytes_per_sec, link.achievable, link.latency_sec, rails, source)


def get_gpu(name):
    if name not in GPUS:
        raise PlanError("gpu=%r is unknown; choose one of %s" % (name, ", ".join(GPUS)))
    return GPUS[name]


def peak_flops(gpu, precision):
    if precision not in PRECISIONS:
        raise PlanError("precision=%r is unknown; choose one of %s" % (precision, ", ".join(PRECISIONS)))
    if precision not in gpu.peak:
        raise PlanError("precision=%r is not supported by gpu=%s (no bf16 tensor cores); use fp16"
                        % (precision, gpu.name))
    return gpu.peak[precision]
