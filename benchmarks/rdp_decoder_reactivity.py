"""Does RDP's fast decoder use the force? A tokenizer-only training run, then a probe.

    .venv/bin/python benchmarks/rdp_decoder_reactivity.py --dataset data/wipe.zarr --steps 1500 \\
        [--latent-noise 0.3] [--kl-weight 1e-6] [--latent-dim 4] [--time-shift 0] [--obs-quantile 0]

Trains only the asymmetric tokenizer (stage 1, one thread, batch 64) on a wipe dataset
(``rosmind collect --task wipe --policy wipe_expert ...``), then takes up to 40 chunks whose
sponge touches down inside the chunk (force < 1 N over rows 0-5, > 3 N over rows 10-15) and
decodes each from its own latent twice: with its force stream, and with the stream delayed by
6 ticks (a later touch-down). Prints the tool-height reconstruction error (mm, forward
kinematics of the decoded joints vs the demonstration) and how much lower the delayed decode
keeps the tool over rows 10-19 (the expert, touching 6 ticks later, would be ~15 mm lower).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rosmind.dataset import SequenceDataset
from rosmind.policies.rdp import RDPConfig, RDPPolicy
from rosmind.sim.experts import PandaKinematics
from rosmind.spec import load_spec

DELAY = 6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--dataset", default="data/wipe.zarr")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--latent-noise", type=float, default=0.0)
    ap.add_argument("--kl-weight", type=float, default=1e-6)
    ap.add_argument("--latent-dim", type=int, default=RDPConfig.latent_dim)
    ap.add_argument("--time-shift", type=int, default=0, help="RDPConfig.latent_time_shift")
    ap.add_argument("--obs-quantile", type=float, default=0.0, help="RDPConfig.obs_quantile")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = RDPConfig(kl_weight=args.kl_weight, latent_noise=args.latent_noise, latent_dim=args.latent_dim,
                    latent_time_shift=args.time_shift, obs_quantile=args.obs_quantile)
    p = RDPPolicy(cfg)
    ds = SequenceDataset(args.dataset, cfg.obs_keys, cfg.horizon, cfg.n_obs_steps, cfg.n_action_steps,
                         future_keys=cfg.fast_keys)
    p.fit_normalizer(ds.stats(quantile=cfg.obs_quantile))
    opt = torch.optim.AdamW(p.tokenizer.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    t0 = time.time()
    for _ in range(args.steps):
        items = [ds[int(i)] for i in torch.randint(0, len(ds), (64,), generator=g)]
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        loss, logs = p.tokenizer_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"obs_quantile {args.obs_quantile} time_shift {args.time_shift} latent_dim {args.latent_dim} latent_noise {args.latent_noise} kl_weight {args.kl_weight} steps {args.steps}: "
          f"L1 {logs['recon_l1']:.4f} ({time.time() - t0:.0f} s)")
    force = ds.arrays["wrench"][:, 2]
    touch = [i for i, (b0, b1, s0, _) in enumerate(ds.indices[:30000])
             if s0 == 0 and b1 - b0 == cfg.horizon and force[b0:b0 + 6].max() < 1 and force[b0 + 10:b0 + 16].min() > 3][:40]
    kin = PandaKinematics(load_spec("panda"))
    errors, deeper = [], []
    for i in touch:
        item = ds[i]
        batch = {k: v[None] for k, v in item.items()}
        q0 = batch["joint_pos"][0, 0].numpy()
        with torch.no_grad():
            x, fs = p._chunk(batch), p._fast_stream(batch)
            z = p.tokenizer.encode(x)[0]
            late = fs.clone()
            late[:, DELAY:], late[:, :DELAY] = fs[:, :-DELAY], fs[:, :1]

            def heights(f, z=z, q0=q0):
                y = p.tokenizer.decode(z, f)[0]
                return np.array([kin.fk(q0[:7] + p.normalizer.unnormalize_index("action", y[r], r).numpy()[:7])[2]
                                 for r in range(len(y))])

            on_time, delayed = heights(fs), heights(late)
        demo = np.array([kin.fk(item["action"][r].numpy()[:7])[2] for r in range(cfg.horizon)])
        errors.append(np.abs(on_time - demo).mean())
        deeper.append((on_time - delayed)[10:20].mean())
    kin.close()
    print(f"  {len(touch)} touch-down chunks: tool-height reconstruction error {1000 * np.mean(errors):.2f} mm; "
          f"a {DELAY}-tick-later touch-down decodes {1000 * np.mean(deeper):.2f} mm lower (expert: ~15 mm)")


if __name__ == "__main__":
    main()
