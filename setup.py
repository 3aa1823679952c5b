"""vae_jax: VAEs with learned priors and flow posteriors in JAX/Flax."""
import setuptools

setuptools.setup(
    name="vae_jax",
    version="0.1.0",
    description="Train, evaluate and compare VAEs with learned priors and flow posteriors (JAX/Flax).",
    packages=setuptools.find_packages(include=["vae_jax", "vae_jax.*"]),
    python_requires=">=3.10",
    # Ranges are the versions this project is tested with (see .ci/run).
    install_requires=[
        "jax>=0.5,<0.11",
        "flax>=0.10,<0.13",
        "optax>=0.2.4,<0.3",
        "distrax>=0.1.5,<0.2",
        "orbax-checkpoint>=0.11,<0.13",
        "ml-collections>=0.1.1,<1.2",
        "absl-py>=2.0,<3",
        "tensorflow-datasets>=4.9,<5",
        "scipy>=1.11",  # .mat parsers (scipy is already a jax dependency)
        "scikit-learn>=1.3,<2",  # ships the embedded 8x8 digits used by the quickstart
        "tensorboardX>=2.6,<3",  # TensorBoard events without TensorFlow
        "pillow>=10,<14",  # PNG sample grids
    ],
    extras_require={
        "test": ["pytest>=8,<10"],
        # TFDS needs TensorFlow to decompress and prepare datasets; nothing else does.
        "tfds": ["tensorflow-cpu>=2.16,<3", "importlib_resources"],  # TFDS 4.9 uses it undeclared (tensorflow/datasets#11212)
    },
)
