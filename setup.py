"""hvd-pretrain: BERT, ALBERT and ELECTRA pre-training on GPU clusters with Horovod.

Why each dependency is here: see README.md, "Dependencies".
"""

from setuptools import find_packages, setup

TF_VERSION = "2.18.1"
HOROVOD_VERSION = "0.28.1"

setup(
    name="hvd-pretrain",
    version="0.1.0",
    description="Pre-train BERT, ALBERT and ELECTRA encoders with Horovod",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.12",
    packages=find_packages(include=["hvd_pretrain", "hvd_pretrain.*"]),
    include_package_data=True,
    package_data={"hvd_pretrain": ["**/*.txt", "**/*.json", "**/*.js", "**/*.css", "**/*.html", "**/*.tsv", "**/*.rules", "**/*.cc"]},
    install_requires=[
        "tensorflow==" + TF_VERSION,
        "tf-keras~=2.18.0",
        "horovod==" + HOROVOD_VERSION,
        "sentencepiece>=0.2.0",
        "absl-py>=1.0",
        "psutil>=5.9",
        "numpy>=1.26,<2.1",
        "jieba>=0.42",
        "tqdm>=4.66",
        "prometheus-client>=0.20",
        "google-crc32c>=1.5",
        "tokenizers>=0.19",
        "safetensors>=0.4",
        "zstandard>=0.22",
        "pyarrow>=14",
        "sentencex>=1.0",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            "pyyaml>=6",
            "selenium>=4.20",
            "torch==2.13.0",
            "transformers>=4.44",
            "bert-tensorflow==1.0.4",
            "albert-tensorflow==1.1",
            "snownlp>=0.12",
            "spacy-pkuseg>=1.0",
        ],
        "chinese": ["spacy-pkuseg>=1.0"],
        "gpu": ["nvidia-ml-py>=12"],
        "bench": ["mpi4py>=3.1"],
    },
    entry_points={
        "console_scripts": [
            "hvd-pretrain=hvd_pretrain.cli.pretrain:run",
            "hvd-data=hvd_pretrain.cli.data:run",
            "hvd-job=hvd_pretrain.cli.job:run",
            "hvd-monitor=hvd_pretrain.cli.monitor:run",
            "hvd-export=hvd_pretrain.cli.export:run",
            "hvd-plan=hvd_pretrain.cli.plan:run",
            "hvd-finetune=hvd_pretrain.cli.finetune:run",
        ],
    },
)
