"""vae_jax: VAEs with learned priors and flow posteriors in JAX/Flax."""
import setuptools

setuptools.setup(
    name="vae_jax",
    version="0.1.0",
    description="Train, evaluate and compare VAEs with learned priors and flow posteriors (JAX/Flax).",
    packages=setuptools.find_packages(include=["vae_jax", "vae_jax.*"]),
    python_requires=">=3.11",
    # CI (.ci/run) tests two sets, pinned in constraints.txt: Python 3.11 with the lower bounds
    # below (JAX 0.10) and Python 3.12 with the newest releases (JAX 0.12). Upper bounds stop at
    # the next release line, whose API changes we have not tested.
    install_requires=[
        "jax>=0.10.2,<0.13",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "distrax>=0.1.9,<0.2",
        "orbax-checkpoint>=0.12.8,<0.13",
        "ml-collections>=1.1,<1.2",
        "absl-py>=2.5,<3",
        "tensorflow-datasets>=4.9.10,<5",
        "scipy>=1.17,<2",  # .mat parsers (scipy is already a jax dependency)
        "scikit-learn>=1.9,<2",  # ships the embedded 8x8 digits used by the quickstart
        "tensorboardX>=2.6.5,<3",  # TensorBoard events without TensorFlow
        "pillow>=13,<14",  # PNG sample grids
        "matplotlib>=3.11,<4",  # histograms, curves and heatmaps of vae_jax.analyze
        "constriction>=0.5,<0.6",  # the ANS entropy coder of vae_jax.compress
    ],
    extras_require={
        # pytest-xdist runs the suite on every core (-n auto): most of its time is XLA compiling
        # small programs one thread at a time.
        "test": ["pytest>=9,<10", "pytest-xdist>=3.5,<4"],
        # TFDS needs TensorFlow to decompress and prepare datasets; nothing else does. TFDS 4.9
        # imports importlib_resources without declaring it (tensorflow/datasets#11212).
        "tfds": ["tensorflow-cpu>=2.21,<3", "importlib_resources>=7,<8"],
    },
)
