"""Xu et al. (2020), every model as a *cell*: --config=configs/xu2020.py:<cell>.

A cell is a comma-separated set of tokens, in any order, for example
`python -m vae_jax.main --config=configs/xu2020.py:resnet,rnvp_prior,K=20,static_mnist`.
`get_config` turns it into the full config with the paper's settings (Appendices B.1-B.3, B.5,
B.7, B.9, B.13); `cells()` names the models of the paper's tables, which
`python launch/xu2020.py list` shows by table (launch/xu2020_tables.py holds the printed numbers).
Shorter runs keep the schedule's shape: --config.train.num_epochs=50 scales the KL warm-up and the
learning-rate boundaries with it.

Tokens (exactly one architecture, one flow placement and one dataset; the rest optional):
  architecture  dense | conv | resnet | pixel | resnet_hvae | resnet_small (B.7's low-complexity
                ResnetVAE). On cifar10, resnet is the B.5 ResnetVAE with an 8x8x32 latent tensor.
  flow          standard | rnvp_prior | rnvp_posterior | rnvp_both (K blocks in each, Table 4)
  K=<int>       flow depth; required by the rnvp_* flows (K=0 with rnvp_prior is standard)
  pure          RealNVP without InvertibleDense and ActNorm (Table B.4)
  posthoc | iterative
                prior training strategy (B.3, Algorithm B.1); joint when absent. These start from
                the standard-prior model of `pretraining_cell(cell)`.
  beta=<float>  beta-VAE (Eq. 4)
  reg           the Reg[q(z)] regularizer (B.3; Tables 5 and B.1)
  min_logstd=<float>  the posterior's log-std clip (B.6, Table B.3); -inf for none
  epochs=<int>, lr=<float>
                a fixed budget and constant learning rate without early stopping (Table B.4)
  width=<float> cifar10 only: the fraction of B.5's channel counts in the encoder, the decoder
                and the prior's coupling networks (a CPU-budget variant; 1 is the paper's)
  dataset       static_mnist | mnist | fashion_mnist | omniglot | cifar10

Where the paper is silent, our choices (each also noted where it is implemented):
  - leaky ReLU slope 0.2 (nets/dense.py); resnet blocks in pre-activation form without
    normalization, each branch scaled by a learned scalar that starts at zero (nets/conv.py);
  - PixelVAE: PixelCNN++-style shifted convolutions on x with the decoder features entering every
    gated residual block, so each pixel sees all of h(z) and only the pixels before it
    (nets/pixelcnn.py);
  - discretized logistic with open-ended edge bins (a proper distribution over the 256 values);
  - early stopping after 10 validations (200 epochs) without improvement;
  - post-hoc and iterative training keep one Adam state per parameter group (prior, VAE) across
    phases, and clip each group's gradient norm on its own;
  - the pure RealNVP alternates which half each coupling transforms (Dinh et al. 2017).
"""
import functools

import ml_collections

from vae_jax import configuration
from vae_jax.models.factory import component
from vae_jax.nets import conv

# B.3: 2,400 epochs; lr 1e-3, 1e-4, 1e-5 for 800 epochs each; KL warm-up over the first 100.
# Expressed as fractions of training so that a shorter run keeps the same shape.
PAPER_EPOCHS = 2400

ARCHITECTURES = ("dense", "conv", "resnet", "pixel", "resnet_hvae", "resnet_small")
FLOWS = ("standard", "rnvp_prior", "rnvp_posterior", "rnvp_both")
STRATEGIES = ("posthoc", "iterative")
DATASETS = ("static_mnist", "mnist", "fashion_mnist", "omniglot", "cifar10")
_FLAGS = ("pure", "reg")
_VALUED = ("K", "beta", "min_logstd", "epochs", "lr", "width")  # also the canonical order
_LATENT_DIM = {"static_mnist": 40, "mnist": 40, "fashion_mnist": 64, "omniglot": 64}  # B.2
_CIFAR_LATENT_CHANNELS, _CIFAR_LATENT_SIDE = 32, 8  # B.5: z is 8 x 8 x 32
# B.3: epochs after pre-training for post-hoc and iterative prior training.
_PRIOR_TRAINING_EPOCHS = 3200
# B.3: iterations I of Algorithm B.1 (M = 3200 / (2 I) epochs each).
_ITERATIONS = {"static_mnist": 4}
_DEFAULT_ITERATIONS = 16
# B.3: early stopping on validation NLL (100 samples, every 20 epochs) on StaticMNIST and for
# PixelVAE. The paper gives no patience; ours stops after 10 validations without improvement.
_VALIDATE_EVERY_EPOCHS = 20
_PATIENCE_EPOCHS = 200


def parse_cell(cell: str) -> dict:
  """Cell string -> {architecture, flow, dataset, strategy, pure, reg, K, beta, ...}."""
  parsed = {"strategy": "joint", "pure": False, "reg": False}
  seen = {}
  for token in (t.strip() for t in cell.split(",") if t.strip()):
    if "=" in token:
      key, value = token.split("=", 1)
      if key not in _VALUED:
        raise ValueError(f"Unknown cell option {key!r} in {cell!r}; valid: {', '.join(_VALUED)}.")
      parsed[key] = int(value) if key in ("K", "epochs") else float(value)
      continue
    for slot, choices in (("architecture", ARCHITECTURES), ("flow", FLOWS),
                          ("strategy", STRATEGIES), ("dataset", DATASETS)):
      if token in choices:
        if slot in seen:
          raise ValueError(f"Cell {cell!r} names two {slot}s: {seen[slot]!r} and {token!r}.")
        seen[slot] = parsed[slot] = token
        break
    else:
      if token not in _FLAGS:
        raise ValueError(
            f"Unknown cell token {token!r} in {cell!r}. Valid: {', '.join(ARCHITECTURES)}; "
            f"{', '.join(FLOWS)}; {', '.join(STRATEGIES)}; {', '.join(DATASETS)}; "
            f"{', '.join(_FLAGS)}; " + ", ".join(f"{k}=<value>" for k in _VALUED) + ".")
      parsed[token] = True
  for slot, choices in (("architecture", ARCHITECTURES), ("flow", FLOWS), ("dataset", DATASETS)):
    if slot not in parsed:
      raise ValueError(f"Cell {cell!r} names no {slot}; one of {', '.join(choices)}.")
  if parsed["flow"] != "standard" and "K" not in parsed:
    raise ValueError(f"Cell {cell!r}: flow {parsed['flow']} needs K=<depth>.")
  if parsed["strategy"] != "joint" and (parsed["flow"] != "rnvp_prior"
                                        or parsed["architecture"] == "resnet_hvae"):
    raise ValueError(f"Cell {cell!r}: {parsed['strategy']} training is for one-latent VAEs "
                     "with rnvp_prior (B.3).")
  if parsed["dataset"] == "cifar10" and parsed["architecture"] != "resnet":
    raise ValueError(f"Cell {cell!r}: on cifar10 the paper has only the resnet model (B.5).")
  if "width" in parsed and (parsed["dataset"] != "cifar10" or not parsed["width"] > 0):
    raise ValueError(f"Cell {cell!r}: width=<fraction> (> 0) scales the channels of the "
                     "cifar10 ResnetVAE (B.5).")
  return parsed


def canonical(cell: str) -> str:
  """The cell's tokens in one fixed order, so equal cells compare equal."""
  p = parse_cell(cell)
  tokens = [p["architecture"], p["flow"]]
  tokens += [f"K={p['K']}"] if "K" in p else []
  tokens += ["pure"] if p["pure"] else []
  tokens += [p["strategy"]] if p["strategy"] != "joint" else []
  tokens += [f"beta={p['beta']:g}"] if "beta" in p else []
  tokens += ["reg"] if p["reg"] else []
  tokens += [f"{k}={p[k]:g}" for k in _VALUED[2:] if k in p]
  return ",".join(tokens + [p["dataset"]])


def cell_slug(cell: str) -> str:
  """A file-name-safe form of the canonical cell, used as its workdir name."""
  return canonical(cell).replace(",", "-").replace("=", "")


def pretraining_cell(cell: str):
  """For post-hoc and iterative cells, the standard-prior cell they start from; else None."""
  p = parse_cell(cell)
  if p["strategy"] == "joint":
    return None
  return canonical(cell.replace(p["strategy"], "").replace(f"K={p['K']}", "")
                   .replace("rnvp_prior", "standard"))


def paper_defaults() -> ml_collections.ConfigDict:
  """What every model of the paper shares: the DenseVAE on MNIST with the RealNVP prior (K = 20),
  trained with B.3's schedule."""
  config = configuration.base_config()
  config.data.name = "mnist"
  model = config.model
  model.latent_dim, model.min_logstd = 40, -11.0  # B.2; B.6 / Section 3
  model.encoder, model.decoder, model.likelihood = networks("dense")
  # Eq. 6-7, B.2: K = 20 blocks of InvertibleDense -> Coupling (h = Dense[256]) -> ActNorm.
  model.prior = component("prior", "realnvp", num_blocks=20, coupling_hidden=256)
  train = config.train
  train.num_epochs, train.batch_size = float(PAPER_EPOCHS), 128  # B.3
  train.learning_rates = (1e-3, 1e-4, 1e-5)
  train.lr_boundaries = (800 / PAPER_EPOCHS, 1600 / PAPER_EPOCHS)
  train.kl_warmup_fraction, train.kl_warmup_start = 100 / PAPER_EPOCHS, 0.01  # 0.01 -> 1 (B.3)
  train.l2_weight = 1e-4  # on kernels of non-linear layers (B.3)
  train.grad_clip_norm = 100.0  # Section 3 clips gradients; the norm is not stated: ours
  config.eval.num_samples = 1000  # B.3
  return config


def networks(architecture: str, width: float = 1.0):
  """(encoder, decoder, likelihood) trees of an architecture token (B.2; B.5 for resnet_cifar,
  whose channel counts are multiplied by `width`; B.7 for resnet_small)."""
  if architecture == "dense":  # B.2: Dense[500, 500] each way, the logits straight out
    return (component("encoder", "dense", features=(500, 500)),
            component("decoder", "dense", features=(500, 500)),
            component("likelihood", "bernoulli", project=False))
  if architecture == "resnet_cifar":
    cifar = dict(layers="cifar", residual=True, width=width)
    return (component("encoder", "conv", **cifar), component("decoder", "conv", **cifar),
            component("likelihood", "discretized_logistic"))
  layers = dict(layers="small" if architecture == "resnet_small" else "mnist",
                residual=architecture != "conv")
  return (component("encoder", "conv", **layers), component("decoder", "conv", **layers),
          component("likelihood", "pixelcnn") if architecture == "pixel"
          else component("likelihood", "bernoulli", project=True))


def get_config(cell: str) -> ml_collections.ConfigDict:
  """The full config of one cell, with the paper's settings."""
  p = parse_cell(cell)
  config = paper_defaults()
  dataset, architecture = p["dataset"], p["architecture"]
  config.data.name = dataset
  model, train = config.model, config.train

  width = p.get("width", 1.0)
  if dataset == "cifar10":
    architecture = {"resnet": "resnet_cifar"}.get(architecture, architecture)
    model.latent_dim, model.latent_map_side = _CIFAR_LATENT_CHANNELS, _CIFAR_LATENT_SIDE
    coupling_hidden = conv.scaled_channels(64, width)  # B.5: Resnet[8x8x64 -> 8x8x64]
    # Activations of 32x32x96 per sample: evaluate 100 points x 10 samples at a time.
    config.eval.batch_size, config.eval.sample_chunk = 100, 10
  else:
    model.latent_dim = _LATENT_DIM[dataset]
    coupling_hidden = 256  # B.2: Dense[256]
  model.name = "hvae" if architecture == "resnet_hvae" else "vae"
  model.encoder, model.decoder, model.likelihood = networks(
      "resnet" if architecture == "resnet_hvae" else architecture, width)

  flow, depth = p["flow"], p.get("K", 0)
  realnvp = dict(num_blocks=depth, coupling_hidden=coupling_hidden, pure=p["pure"])
  model.prior = (component("prior", "realnvp", **realnvp)
                 if flow in ("rnvp_prior", "rnvp_both") and depth else component("prior", "standard"))
  model.posterior = (component("posterior", "realnvp", **realnvp)
                     if flow in ("rnvp_posterior", "rnvp_both") and depth
                     else component("posterior", "gaussian"))
  if "min_logstd" in p:
    model.min_logstd = p["min_logstd"]

  # B.3: batch 128 (64 for PixelVAE); lr 1e-3/1e-4/1e-5 over thirds of 2,400 epochs, except
  # StaticMNIST: 1e-4 for 1,600 epochs then 1e-5.
  train.batch_size = 64 if architecture == "pixel" else 128
  if dataset == "static_mnist":
    train.learning_rates = (1e-4, 1e-5)
    train.lr_boundaries = (1600 / PAPER_EPOCHS,)
  if dataset == "static_mnist" or architecture == "pixel":
    config.data.validation = True
    train.validate_every_epochs = _VALIDATE_EVERY_EPOCHS
    train.early_stopping_patience_epochs = _PATIENCE_EPOCHS

  if p["strategy"] != "joint":
    train.strategy = p["strategy"]
    train.num_epochs = _PRIOR_TRAINING_EPOCHS
    train.kl_warmup_fraction = 0.0  # the VAE was warmed up in pre-training
    train.iterations = _ITERATIONS.get(dataset, _DEFAULT_ITERATIONS)
    # Post-hoc (B.3): 1e-3 for the first half, 1e-4 for the second. Iterative schedules its own.
    train.learning_rates = (1e-3, 1e-4)
    train.lr_boundaries = (0.5,)
    train.early_stopping_patience_epochs = 0
  if "beta" in p:
    train.beta = p["beta"]
  if p["reg"]:
    train.reg_weight = 1.0
  if "epochs" in p:
    train.num_epochs = p["epochs"]
  if "lr" in p:
    train.learning_rates = (p["lr"],)
    train.lr_boundaries = ()
    train.early_stopping_patience_epochs = 0
    train.validate_every_epochs = 0
    config.data.validation = False  # B.7: "without validation set"
  return config



def cells() -> dict:
  """The models of the paper's tables (launch/xu2020_tables.py), by canonical cell name."""
  datasets = DATASETS[:4]  # the binary datasets; CIFAR-10 only in Table B.2
  names = [f"{a},{f},{d}" for a in ("dense", "conv", "resnet", "pixel")  # Table 3, B.12
           for f in ("standard", "rnvp_posterior,K=20", "rnvp_prior,K=20") for d in datasets]
  names += [f"{a},rnvp_prior,K=50,{d}" for a in ("conv", "resnet", "pixel") for d in datasets]
  names += [f"resnet,rnvp_prior,K={k},{d}" for k in (1, 2, 5, 10, 30) for d in datasets]  # B.15
  names += [f"resnet,rnvp_prior,K={k},mnist" for k in (4, 40)]  # Table 4, B.13
  names += [f"resnet,rnvp_posterior,K={k},mnist" for k in (2, 4, 10, 40)]
  names += [f"resnet,rnvp_both,K={k},mnist" for k in (1, 2, 5, 10, 20)]
  names += [f"resnet,rnvp_prior,K=20,{s},{d}"  # Tables 5-6, B.1, B.18
            for s in ("reg", "posthoc", "iterative") for d in datasets]
  names += [f"resnet,{f}min_logstd={m},mnist" for f in ("standard,", "rnvp_prior,K=20,")  # B.3
            for m in ("1", "0", "-1", "-2", "-3", "-5", "-8", "-14", "-inf")]
  names += [f"resnet_hvae,{f},{d}" for f in ("standard", "rnvp_prior,K=20") for d in datasets]
  names += [f"resnet_small,{f},{p}epochs=300,lr=0.0005,static_mnist"  # B.4
            for f in ("rnvp_prior,K=12", "rnvp_both,K=8") for p in ("", "pure,")]
  names += ["resnet,standard,cifar10", "resnet,rnvp_prior,K=50,cifar10"]  # B.2
  return {canonical(name): functools.partial(get_config, canonical(name)) for name in names}
