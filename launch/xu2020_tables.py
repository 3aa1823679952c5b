"""The results tables of Xu et al. (2020) as data: every printed number, with the cell it measures.

`TABLES` maps a table name ("1" ... "6", "B.1" ... "B.23") to a `Table` of `Entry`s, in paper
order. An entry's cell (see configs/xu2020.py) is None for other papers' models, kept as reference
rows. Numbers are as printed; "± s" goes into `paper_std`. Tables garbled by the PDF extraction
were rebuilt from their headers and from the tables that repeat their numbers (Table 3 ⊂ B.12,
Table 4 ⊂ B.13, Table 6 ⊂ B.18, B.6 = B.20 without ±, B.9 = Table 2 with ±, B.21 ⊃ B.12's
ResnetVAE rows).

Where the paper leaves the model implicit: flow depth K = 20 in Table 5, B.1 and B.3 (as in
Table 3 and B.6); Reg[q(z)] only in the RealNVP-prior models of Table 5 and B.1 ("regularized"),
since it pulls q(z) towards N(0, I) as a standard prior already does; B.3's min logstd = -11 row
is the default clip, i.e. the plain cell.
"""
import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Entry:
  """One printed number: its row and column labels, the cell it measures and the metric."""
  row: str
  column: str
  cell: str | None
  metric: str
  paper: float | None
  paper_std: float | None = None


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  entries: tuple[Entry, ...]


_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)(?:\s*±\s*(\d+(?:\.\d+)?))?")
_DATASETS = {"StaticMNIST": "static_mnist", "MNIST": "mnist", "FashionMNIST": "fashion_mnist",
             "Omniglot": "omniglot"}
_ARCHITECTURES = {"DenseVAE": "dense", "ConvVAE": "conv", "ResnetVAE": "resnet",
                  "PixelVAE": "pixel"}
_FLOWS_K20 = {"standard": "standard", "RNVP q(z|x)": "rnvp_posterior,K=20",
              "RNVP p(z)": "rnvp_prior,K=20"}
_ELBO_METRICS = ("elbo", "reconstruction", "kl", "kl_z_given_x")


def _numbers(line: str) -> list[tuple[float, float | None]]:
  return [(float(v), float(s) if s else None) for v, s in _NUMBER.findall(line)]


def _grid(text: str, rows, columns, cell) -> list[Entry]:
  """Entries of a printed block: one line of numbers (± std) per row, one per (column, metric).

  Args:
    text: the block's numbers, one line per row, as printed.
    rows: the row labels.
    columns: (column label, metric) per number of a line.
    cell: (row, column label) -> cell or None.
  """
  lines = text.strip().splitlines()
  assert len(lines) == len(rows), (rows, text)
  entries = []
  for row, line in zip(rows, lines):
    values = _numbers(line)
    assert len(values) == len(columns), (row, line)
    for (column, metric), (value, std) in zip(columns, values):
      entries.append(Entry(row, column, cell(row, column), metric, value, std))
  return entries


def _listing(column: str, metric: str, rows) -> list[Entry]:
  """Entries of a one-column table of models: rows are (label, cell or None, printed number)."""
  return [Entry(label, column, cell, metric, *_numbers(printed)[0])
          for label, cell, printed in rows]


def _nll_comparison(dataset: str, references_without, references_with, printed) -> list[Entry]:
  """Tables 1, 2, B.8-B.11: other papers' NLLs, then our K = 50 models (Conv, Resnet, Pixel)."""
  ours = [f"{arch},rnvp_prior,K=50,{dataset}" for arch in ("conv", "resnet", "pixel")]
  names = ["ConvVAE + RNVP p(z), K = 50", "ResnetVAE + RNVP p(z), K = 50",
           "PixelVAE + RNVP p(z), K = 50"]
  rows = ([(name, None, value) for name, value in references_without]
          + list(zip(names[:2], ours[:2], printed[:2]))
          + [(name, None, value) for name, value in references_with]
          + [(names[2], ours[2], printed[2])])
  return _listing("NLL", "nll", rows)


_LARS = "ConvHVAE + Lars prior† (Bauer & Mnih, 2019)"
_VAMP = "ConvHVAE + VampPrior† (Tomczak & Welling, 2018)"
_HUANG = "ResConv + RealNVP prior (Huang et al., 2017)"
_IAF = "VAE + IAF* (Kingma et al., 2016)"
_BIVA = "BIVA* (Maaløe et al., 2019)"
_VLAE = "VLAE* (Chen et al., 2017)"
_PIXEL_VAMP = "PixelHVAE + VampPrior† (Tomczak & Welling, 2018)"
_PIXELVAE = "PixelVAE† (Gulrajani et al., 2017)"


def _static_mnist_comparison(ours) -> list[Entry]:
  return _nll_comparison(
      "static_mnist",
      [(_LARS, "81.70"), (_VAMP, "81.09"), (_HUANG, "81.44"), (_IAF, "79.88"), (_BIVA, "78.59")],
      [(_VLAE, "79.03"), (_PIXEL_VAMP, "79.78")], ours)


def _mnist_comparison(iaf, ours) -> list[Entry]:
  return _nll_comparison(
      "mnist", [(_LARS, "80.30"), (_VAMP, "79.75"), (_IAF, iaf), (_BIVA, "78.41")],
      [(_VLAE, "78.53"), (_PIXELVAE, "79.02"), (_PIXEL_VAMP, "78.45")], ours)


def _architecture_flow_grid(architectures, text: str) -> list[Entry]:
  """Table 3: rows are datasets, columns are "<architecture> <flow>" (K = 20)."""
  columns = [(f"{arch} {flow}", "nll") for arch in architectures for flow in _FLOWS_K20]

  def cell(row, column):
    arch, flow = column.split(" ", 1)
    return f"{_ARCHITECTURES[arch]},{_FLOWS_K20[flow]},{_DATASETS[row]}"
  return _grid(text, list(_DATASETS), columns, cell)


def _model_dataset_grid(text: str) -> list[Entry]:
  """Table B.12: rows are "<architecture> <flow>" (K = 20), columns are datasets."""
  rows = [f"{arch} {flow}" for arch in _ARCHITECTURES for flow in _FLOWS_K20]

  def cell(row, column):
    arch, flow = row.split(" ", 1)
    return f"{_ARCHITECTURES[arch]},{_FLOWS_K20[flow]},{_DATASETS[column]}"
  return _grid(text, rows, [(d, "nll") for d in _DATASETS], cell)


def _active_units_grid(text: str) -> list[Entry]:
  """Table 5: ResnetVAE, rows are datasets, columns flows; the RealNVP prior uses Reg[q(z)]."""
  def cell(row, column):
    reg = "reg," if column == "RNVP p(z)" else ""
    return f"resnet,{_FLOWS_K20[column]},{reg}{_DATASETS[row]}"
  return _grid(text, list(_DATASETS), [(f, "active_units") for f in _FLOWS_K20], cell)


_K0_ROWS = {"q(z|x), K = 2K0": ("rnvp_posterior", 2), "both, K = K0": ("rnvp_both", 1),
            "p(z), K = 2K0": ("rnvp_prior", 2)}


def _k0_grid(k0s, metric: str, text: str) -> list[Entry]:
  """Tables 4, B.13, B.14: ResnetVAE on MNIST; rows are flow placements, columns K0."""
  def cell(row, column):
    flow, factor = _K0_ROWS[row]
    return f"resnet,{flow},K={factor * int(column.split('= ')[1])},mnist"
  return _grid(text, list(_K0_ROWS), [(f"K0 = {k}", metric) for k in k0s], cell)


def _elbo_blocks(architecture: str, blocks) -> list[Entry]:
  """Tables 6, B.16-B.19, B.23: per prior/posterior block, rows are datasets, columns the four
  ELBO terms.

  Args:
    architecture: the cell's architecture token.
    blocks: (column label, flow tokens, printed block) per block.
  """
  entries = []
  for label, flow, text in blocks:
    entries += _grid(text, list(_DATASETS), [(label, m) for m in _ELBO_METRICS],
                     lambda row, _, flow=flow: f"{architecture},{flow},{_DATASETS[row]}")
  return entries


def _strategy_grid(text: str) -> list[Entry]:
  """Tables B.6 and B.20: ResnetVAE, rows are datasets, columns the prior's training strategy."""
  strategies = {"joint": "rnvp_prior,K=20", "iterative": "rnvp_prior,K=20,iterative",
                "post-hoc": "rnvp_prior,K=20,posthoc", "none": "standard"}
  return _grid(text, list(_DATASETS), [(s, "nll") for s in strategies],
               lambda row, column: f"resnet,{strategies[column]},{_DATASETS[row]}")


def _b3() -> list[Entry]:
  """Table B.3: ResnetVAE on MNIST, rows are priors, columns the min log-std clip."""
  clips = ("1", "0", "-1", "-2", "-3", "-5", "-8", "-11", "-14", "-inf")
  # Printed columns std, NLL, au per clip (min_std and min_std / std follow from the clip).
  printed = {
      "RealNVP p(z)": ("rnvp_prior,K=20", """
          2.7183 78.61 40
          1.0000 78.57 40
          0.3679 78.58 40
          0.1353 78.57 40
          0.0500 78.59 37
          0.1796 78.56 40
          0.1662 78.56 40
          0.1750 78.60 40
          0.1791 78.56 40
          0.1693 78.58 40"""),
      "Normal": ("standard", """
          2.7183 184.16 40
          1.0000 94.46 40
          0.5890 84.03 36
          0.6839 81.75 25
          0.6877 81.07 25
          0.6882 81.05 26
          0.6871 81.04 25
          0.6860 81.03 26
          0.6896 81.06 25
          0.6873 81.08 26"""),
  }
  entries = []
  for row, (flow, text) in printed.items():
    for clip, line in zip(clips, text.strip().splitlines()):
      option = "" if clip == "-11" else f"min_logstd={clip},"  # -11 is the default clip
      cell = f"resnet,{flow},{option}mnist"
      column = f"min logstd = {clip.replace('inf', '∞')}"
      for metric, (value, std) in zip(("posterior_std", "nll", "active_units"), _numbers(line)):
        entries.append(Entry(row, column, cell, metric, value, std))
  return entries


def _b4() -> list[Entry]:
  """Table B.4: low-complexity ResnetVAE (300 epochs, lr 0.0005, no early stopping)."""
  budget = "epochs=300,lr=0.0005,static_mnist"
  ours = "Our ResnetVAE, low complexity"
  huang = "ResConv VAE (Huang et al., 2017)"
  return _listing("NLL", "nll", [
      (f"{ours}: p(z) pure, K = 12; q(z|x) /",
       f"resnet_small,rnvp_prior,K=12,pure,{budget}", "81.05"),
      (f"{ours}: p(z) pure, K = 8; q(z|x) pure, K = 8",
       f"resnet_small,rnvp_both,K=8,pure,{budget}", "80.88"),
      (f"{ours}: p(z) K = 12; q(z|x) /", f"resnet_small,rnvp_prior,K=12,{budget}", "80.67"),
      (f"{ours}: p(z) K = 8; q(z|x) K = 8", f"resnet_small,rnvp_both,K=8,{budget}", "80.66"),
      (f"{huang}: p(z) pure, K = 12; q(z|x) /", None, "81.44"),
      (f"{huang}: p(z) pure, K = 8; q(z|x) pure, K = 8", None, "80.81"),
  ])


def _b1(text: str) -> list[Entry]:
  """Table B.1: ResnetVAE with RealNVP prior, with and without Reg[q(z)]."""
  columns = {"regularized": "reg,", "un-regularized": ""}
  return _grid(text, list(_DATASETS),
               [(c, m) for c in columns for m in ("latent_mean", "latent_variance")],
               lambda row, column: f"resnet,rnvp_prior,K=20,{columns[column]}{_DATASETS[row]}")


def _b7(text: str) -> list[Entry]:
  """Table B.7: ResnetVAE with iterative and post-hoc priors (MNIST printed "DynamicMNIST")."""
  rows = {"StaticMNIST": "static_mnist", "DynamicMNIST": "mnist",
          "FashionMNIST": "fashion_mnist", "Omniglot": "omniglot"}
  strategies = {"iterative": "iterative", "post-hoc": "posthoc"}
  return _grid(text, list(rows),
               [(s, m) for s in strategies for m in ("reconstruction", "kl", "active_units")],
               lambda row, column: f"resnet,rnvp_prior,K=20,{strategies[column]},{rows[row]}")


def _b15(text: str) -> list[Entry]:
  """Table B.15: ResnetVAE, rows are prior flow depths (0: standard), columns datasets."""
  def cell(row, column):
    depth = int(row.split()[-1])
    flow = f"rnvp_prior,K={depth}" if depth else "standard"
    return f"resnet,{flow},{_DATASETS[column]}"
  return _grid(text, [f"Flow depth {k}" for k in (0, 1, 2, 5, 10, 20, 30, 50)],
               [(d, "nll") for d in _DATASETS], cell)


def _b21(text: str) -> list[Entry]:
  """Table B.21: ResnetVAE and ResnetHVAE, standard and RealNVP prior (K = 20)."""
  rows = {"ResnetVAE standard": "resnet,standard",
          "ResnetVAE RNVP p(z)": "resnet,rnvp_prior,K=20",
          "ResnetHVAE standard": "resnet_hvae,standard",
          "ResnetHVAE RNVP p(z2)": "resnet_hvae,rnvp_prior,K=20"}
  return _grid(text, list(rows), [(d, "nll") for d in _DATASETS],
               lambda row, column: f"{rows[row]},{_DATASETS[column]}")


def _b22(text: str) -> list[Entry]:
  """Table B.22: active units of z1 and z2 of ResnetHVAE; columns are datasets."""
  rows = {"standard": "standard", "RealNVP p(z2)": "rnvp_prior,K=20"}
  return _grid(text, list(rows),
               [(d, f"active_units_{z}") for d in _DATASETS for z in ("z1", "z2")],
               lambda row, column: f"resnet_hvae,{rows[row]},{_DATASETS[column]}")


_ELBO_TITLE = "Average test ELBO, reconstruction loss, kl and kl_{z|x} of "
_STRATEGY_TITLE = ("Test NLL of ResnetVAE with the prior trained jointly, iteratively or post hoc, "
                   "and without prior training (K = 20)")
_STANDARD, _RNVP_POSTERIOR, _RNVP_PRIOR = "standard", "rnvp_posterior,K=20", "rnvp_prior,K=20"
_RESNET_STANDARD_ELBO = """
    -87.61 -60.09 27.52 4.67
    -84.62 -58.70 25.92 3.55
    -228.91 -208.94 19.96 2.74
    -104.87 -66.98 37.89 7.88"""
_RESNET_RNVP_PRIOR_ELBO = """
    -82.85 -54.32 28.54 2.87
    -80.34 -53.64 26.70 1.76
    -225.97 -204.66 21.31 1.88
    -99.60 -61.21 38.39 5.99"""


def _tables() -> dict[str, Table]:
  tables = {}

  def add(name: str, title: str, entries: list[Entry]) -> None:
    tables[name] = Table(name, title, tuple(entries))

  add("1", "Test NLL on StaticMNIST", _static_mnist_comparison(["80.09", "79.84", "79.01"]))
  add("2", "Test NLL on MNIST", _mnist_comparison("79.10", ["78.61", "78.49", "78.12"]))
  add("3", "Average test NLL of DenseVAE, ResnetVAE and PixelVAE with standard, RealNVP "
      "posterior and RealNVP prior (K = 20)",
      _architecture_flow_grid(("DenseVAE", "ResnetVAE", "PixelVAE"), """
          88.84 86.07 84.87 82.95 80.97 79.99 79.47 79.09 78.92
          84.48 82.53 80.43 81.07 79.53 78.58 78.64 78.41 78.15
          228.60 227.79 226.11 226.17 225.02 224.09 224.22 223.81 223.40
          106.42 102.97 102.19 96.99 94.30 93.61 89.83 89.69 89.61"""))
  add("4", "Test NLL of ResnetVAE on MNIST with RealNVP posterior, prior, or both",
      _k0_grid((1, 5, 10, 20), "nll", """
          80.29 79.68 79.53 79.49
          79.85 79.01 78.71 78.56
          79.58 78.75 78.58 78.51"""))
  add("5", "Average number of active units of ResnetVAE (RealNVP prior with Reg[q(z)])",
      _active_units_grid("""
          30 40 40
          25.3 40 40
          27 64 64
          59.3 64 64"""))
  add("6", _ELBO_TITLE + "ResnetVAE with different priors", _elbo_blocks("resnet", [
      ("standard", _STANDARD, _RESNET_STANDARD_ELBO),
      ("RealNVP p(z)", _RNVP_PRIOR, _RESNET_RNVP_PRIOR_ELBO)]))
  add("B.1", "Avg. Mean(z_k) and Var(z_k) of regularized/un-regularized ResnetVAE with RealNVP "
      "prior", _b1("""
          -0.02 ± 0.03  0.93 ± 0.01  0.05 ± 0.37  1.50 ± 0.02
          0.00 ± 0.00  0.98 ± 0.01  -0.01 ± 0.02  0.78 ± 0.04
          0.00 ± 0.00  0.98 ± 0.00  0.03 ± 0.03  0.83 ± 0.04
          0.00 ± 0.02  0.95 ± 0.00  0.00 ± 0.01  0.24 ± 0.01"""))
  add("B.2", "Test bpd on Cifar10", _listing("bpd", "bits_per_dim", [
      ("VAE + IAF (Kingma et al., 2016)", None, "3.11"),
      ("BIVA (Maaløe et al., 2019)", None, "3.08"),
      ("ResnetVAE", "resnet,standard,cifar10", "3.98"),
      ("ResnetVAE + RealNVP p(z), K = 50", "resnet,rnvp_prior,K=50,cifar10", "3.54"),
      ("VLAE (Chen et al., 2017)", None, "2.95")]))
  add("B.3", "Learned std of q(z|x), test NLL and active units of ResnetVAE on MNIST against "
      "the minimum log-std", _b3())
  add("B.4", "Test NLL of our low-complexity ResnetVAE and ResConv VAE (Huang et al., 2017) on "
      "StaticMNIST", _b4())
  add("B.5", "D_KL(q(z)||p(z)) of ResnetVAE with RealNVP prior on MNIST, by Algorithm B.2",
      _grid("15.279 14.623 14.254 13.796 13.392", ["D_KL(q(z)||p(z))"],
            [(f"n_x = {n}", f"aggregated_posterior_kl_nx{n}") for n in (1, 2, 3, 5, 8)],
            lambda row, column: "resnet,rnvp_prior,K=20,mnist"))
  add("B.6", _STRATEGY_TITLE, _strategy_grid("""
          79.99 80.63 80.86 82.95
          78.58 79.61 79.90 81.07
          224.09 224.88 225.22 226.17
          93.61 94.43 94.87 96.99"""))
  add("B.7", "Reconstruction loss, kl and active units of ResnetVAE with iteratively and "
      "post-hoc trained RealNVP priors", _b7("""
          -58.0 26.4 38.7 -60.1 25.3 30
          -57.2 25.1 40 -58.7 24.7 25.3
          -207.8 19.4 64 -208.9 19.0 27
          -63.3 37.9 64 -67.0 35.8 59.3"""))
  add("B.8", "Test NLL on StaticMNIST, with standard deviations",
      _static_mnist_comparison(["80.09 ± 0.01", "79.84 ± 0.04", "79.01 ± 0.03"]))
  add("B.9", "Test NLL on MNIST, with standard deviations",
      _mnist_comparison("79.10 ± 0.07", ["78.61 ± 0.01", "78.49 ± 0.01", "78.12 ± 0.04"]))
  add("B.10", "Test NLL on Omniglot", _nll_comparison(
      "omniglot", [(_LARS, "97.08"), (_VAMP, "97.56"), (_BIVA, "91.34")],
      [(_VLAE, "89.83"), (_PIXEL_VAMP, "89.76")],
      ["93.62 ± 0.02", "93.52 ± 0.02", "89.60 ± 0.01"]))
  add("B.11", "Test NLL on FashionMNIST", _nll_comparison(
      "fashion_mnist", [(_LARS, "225.92")], [],
      ["224.64 ± 0.01", "224.07 ± 0.01", "223.36 ± 0.06"]))
  add("B.12", "Average test NLL of DenseVAE, ConvVAE, ResnetVAE and PixelVAE with standard, "
      "RealNVP posterior and RealNVP prior (K = 20)", _model_dataset_grid("""
          88.84 ± 0.05  84.48 ± 0.03  228.60 ± 0.03  106.42 ± 0.14
          86.07 ± 0.11  82.53 ± 0.00  227.79 ± 0.01  102.97 ± 0.06
          84.87 ± 0.05  80.43 ± 0.01  226.11 ± 0.02  102.19 ± 0.12
          83.63 ± 0.01  82.14 ± 0.01  227.51 ± 0.08  97.87 ± 0.02
          81.11 ± 0.03  80.09 ± 0.01  226.03 ± 0.00  94.90 ± 0.03
          80.06 ± 0.07  78.67 ± 0.01  224.65 ± 0.01  93.68 ± 0.01
          82.95 ± 0.09  81.07 ± 0.03  226.17 ± 0.05  96.99 ± 0.04
          80.97 ± 0.05  79.53 ± 0.03  225.02 ± 0.01  94.30 ± 0.02
          79.99 ± 0.02  78.58 ± 0.01  224.09 ± 0.01  93.61 ± 0.04
          79.47 ± 0.02  78.64 ± 0.02  224.22 ± 0.06  89.83 ± 0.04
          79.09 ± 0.01  78.41 ± 0.01  223.81 ± 0.00  89.69 ± 0.01
          78.92 ± 0.02  78.15 ± 0.04  223.40 ± 0.07  89.61 ± 0.03"""))
  add("B.13", "Test NLL of ResnetVAE on MNIST with RealNVP posterior, prior, or both",
      _k0_grid((1, 2, 5, 10, 20), "nll", """
          80.29 ± 0.03  80.00 ± 0.00  79.68 ± 0.01  79.53 ± 0.02  79.49 ± 0.02
          79.85 ± 0.01  79.42 ± 0.02  79.01 ± 0.02  78.71 ± 0.00  78.56 ± 0.01
          79.58 ± 0.02  79.21 ± 0.01  78.75 ± 0.01  78.58 ± 0.01  78.51 ± 0.02"""))
  add("B.14", "Test reconstruction loss of ResnetVAE on MNIST with RealNVP posterior, prior, "
      "or both", _k0_grid((1, 2, 5, 10, 20), "reconstruction", """
          -57.20 ± 0.05  -56.82 ± 0.01  -56.37 ± 0.04  -56.15 ± 0.05  -55.98 ± 0.05
          -56.34 ± 0.01  -55.64 ± 0.02  -54.68 ± 0.04  -54.04 ± 0.04  -53.76 ± 0.02
          -55.75 ± 0.04  -54.90 ± 0.03  -54.00 ± 0.04  -53.64 ± 0.02  -53.49 ± 0.03"""))
  add("B.15", "Test NLL of ResnetVAE with RealNVP prior of different flow depth K", _b15("""
          82.95 ± 0.09  81.07 ± 0.03  226.17 ± 0.05  96.99 ± 0.04
          81.76 ± 0.04  80.02 ± 0.02  225.27 ± 0.03  96.20 ± 0.06
          81.30 ± 0.02  79.58 ± 0.02  224.78 ± 0.02  95.35 ± 0.06
          80.64 ± 0.06  79.09 ± 0.02  224.37 ± 0.01  94.47 ± 0.01
          80.26 ± 0.05  78.75 ± 0.01  224.18 ± 0.01  93.92 ± 0.02
          79.99 ± 0.02  78.58 ± 0.01  224.09 ± 0.01  93.61 ± 0.04
          79.90 ± 0.05  78.52 ± 0.01  224.07 ± 0.01  93.53 ± 0.02
          79.84 ± 0.04  78.49 ± 0.01  224.07 ± 0.01  93.52 ± 0.02"""))
  add("B.16", _ELBO_TITLE + "DenseVAE (K = 20)", _elbo_blocks("dense", [
      ("standard", _STANDARD, """
          -94.53 -65.54 29.00 5.69
          -88.19 -62.04 26.16 3.71
          -230.81 -211.71 19.11 2.22
          -113.59 -78.25 35.33 7.17"""),
      ("RealNVP q(z|x)", _RNVP_POSTERIOR, """
          -90.78 -62.55 28.23 4.71
          -85.15 -58.83 26.31 2.62
          -229.53 -210.35 19.18 1.75
          -108.54 -73.71 34.83 5.57"""),
      ("RealNVP p(z)", _RNVP_PRIOR, """
          -88.87 -63.35 25.52 4.00
          -82.57 -55.99 26.58 2.14
          -227.72 -208.13 19.59 1.61
          -107.99 -73.10 34.89 5.80""")]))
  add("B.17", _ELBO_TITLE + "ConvVAE (K = 20)", _elbo_blocks("conv", [
      ("standard", _STANDARD, """
          -88.15 -60.34 27.81 4.51
          -85.89 -58.97 26.92 3.75
          -230.43 -210.24 20.18 2.92
          -104.70 -66.00 38.70 6.83"""),
      ("RealNVP q(z|x)", _RNVP_POSTERIOR, """
          -83.92 -56.67 27.25 2.82
          -82.46 -56.08 26.38 2.37
          -228.20 -207.33 20.88 2.18
          -99.92 -62.48 37.44 5.02"""),
      ("RealNVP p(z)", _RNVP_PRIOR, """
          -82.91 -54.01 28.90 2.86
          -80.42 -53.33 27.09 1.75
          -226.65 -204.93 21.72 2.00
          -98.59 -59.07 39.51 4.91""")]))
  add("B.18", _ELBO_TITLE + "ResnetVAE (K = 20)", _elbo_blocks("resnet", [
      ("standard", _STANDARD, _RESNET_STANDARD_ELBO),
      ("RealNVP q(z|x)", _RNVP_POSTERIOR, """
          -84.72 -58.10 26.63 3.75
          -81.95 -56.15 25.80 2.42
          -227.16 -206.61 20.54 2.14
          -100.30 -63.34 36.96 6.00"""),
      ("RealNVP p(z)", _RNVP_PRIOR, _RESNET_RNVP_PRIOR_ELBO)]))
  add("B.19", _ELBO_TITLE + "PixelVAE (K = 20)", _elbo_blocks("pixel", [
      ("standard", _STANDARD, """
          -81.06 -69.02 12.03 1.59
          -79.88 -68.73 11.15 1.24
          -225.60 -214.15 11.45 1.38
          -91.58 -82.80 8.78 1.75"""),
      ("RealNVP q(z|x)", _RNVP_POSTERIOR, """
          -80.65 -67.91 12.75 1.57
          -79.59 -68.17 11.42 1.18
          -225.05 -213.41 11.64 1.24
          -91.26 -83.17 8.10 1.57"""),
      ("RealNVP p(z)", _RNVP_PRIOR, """
          -80.60 -62.22 18.38 1.68
          -79.28 -64.41 14.87 1.13
          -224.65 -210.16 14.49 1.26
          -91.78 -79.70 12.07 2.16""")]))
  add("B.20", _STRATEGY_TITLE + ", with standard deviations", _strategy_grid("""
          79.99 ± 0.02  80.63 ± 0.02  80.86 ± 0.04  82.95 ± 0.09
          78.58 ± 0.01  79.61 ± 0.01  79.90 ± 0.04  81.07 ± 0.03
          224.09 ± 0.01  224.88 ± 0.02  225.22 ± 0.01  226.17 ± 0.05
          93.61 ± 0.04  94.43 ± 0.11  94.87 ± 0.05  96.99 ± 0.04"""))
  add("B.21", "Test NLL of ResnetHVAE compared with ResnetVAE (K = 20)", _b21("""
          82.95 ± 0.09  81.07 ± 0.03  226.17 ± 0.05  96.99 ± 0.04
          79.99 ± 0.02  78.58 ± 0.01  224.09 ± 0.01  93.61 ± 0.04
          81.58 ± 0.00  80.09 ± 0.03  225.18 ± 0.02  95.80 ± 0.03
          79.95 ± 0.01  78.56 ± 0.01  224.11 ± 0.01  93.47 ± 0.01"""))
  add("B.22", "Average number of active units of z1 and z2 of ResnetHVAE", _b22("""
          11.3 25  8.7 18.3  16.3 16.7  12.3 57.7
          1.3 40  0 40  0.3 64  0 64"""))
  add("B.23", _ELBO_TITLE + "ResnetHVAEs with different priors", _elbo_blocks("resnet_hvae", [
      ("standard", _STANDARD, """
          -85.67 -58.88 26.78 4.08
          -82.98 -57.19 25.79 2.90
          -227.56 -207.46 20.10 2.38
          -103.05 -65.04 38.01 7.25"""),
      ("RealNVP p(z2)", _RNVP_PRIOR, """
          -82.82 -54.11 28.71 2.87
          -80.30 -53.55 26.76 1.74
          -225.99 -204.48 21.51 1.88
          -99.37 -61.00 38.37 5.90""")]))
  return tables


TABLES: dict[str, Table] = _tables()


def cells(table_name: str) -> list[str]:
  """The distinct cells of a table, in order of first appearance (reference rows left out)."""
  return list(dict.fromkeys(e.cell for e in TABLES[table_name].entries if e.cell is not None))


def all_cells() -> list[str]:
  """The distinct cells of all tables, in paper order."""
  return list(dict.fromkeys(c for name in TABLES for c in cells(name)))
