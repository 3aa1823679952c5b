"""Compile time of the B.5 RealNVP prior's initialisation for K blocks at width 0.25 (init_compile.py K)."""
import sys, time, jax, jax.numpy as jnp
from vae_jax.models import factory
from vae_jax import config_files

xu2020 = config_files.module("configs/xu2020.py")

K = int(sys.argv[1])
config = xu2020.get_config(f"resnet,rnvp_prior,K={K},cifar10,width=0.25")
prior = factory.create_prior(config.model, (32, 32, 3))
z = jnp.zeros((32, 8, 8, 32))
f = jax.jit(lambda key, z: prior.init(key, z, method=prior.log_prob))
t = time.time(); lowered = f.lower(jax.random.key(0), z); t1 = time.time()
text = lowered.as_text()
print("K", K, "lower", round(t1 - t, 1), "s; hlo lines", text.count("\n"), "qr", text.count("qr"), "lu", text.count("lu_pivots") + text.count("getrf"), flush=True)
c = lowered.compile(); print("compile", round(time.time() - t1, 1), "s", flush=True)
