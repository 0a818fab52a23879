"""The reference implementation's DCGAN training loop (Global-Health-Labs/US-DCGAN, MIT), rewritten
from its description for a side-by-side speed comparison (``bench_gan.py``); not lusynth code.

What is reproduced, because it decides the speed:

* data: an ImageFolder-style tree of image files; **every image is decoded from disk and resized
  every epoch** in ``__getitem__`` (the reference uses cv2.imread + cv2.resize, then ToTensor and
  Normalize(0.5, 0.5); cv2 is not installed here, so PIL decode + bilinear resize stand in),
  a ``DataLoader(batch_size, shuffle=True, num_workers=0)``;
* models: ``nn.Sequential`` G and D of the paper's shape (D ends in Sigmoid; the instance noise
  flag is carried but off), DCGAN init;
* loop: BCELoss; D on real (backward), D on detached fake (backward), D step; G step through D
  *with* D's weight gradients computed (the reference only zeroes them next iteration); ``.item()``
  for the logged numbers every step;
* threads: **not pinned** (torch's default thread count, as the reference never sets it).

Run: ``python benchmarks/reference_dcgan_loop.py --root DIR --image-size 64 --ngf 16 --ndf 16 --steps 30``
prints one JSON line with the measured images/s (timed after ``--warmup`` steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

LAYERS = {64: 5, 128: 6, 256: 7}


class RefGenerator(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int, image_size: int) -> None:
        super().__init__()
        n = LAYERS[image_size]
        ch = ngf * 2 ** (n - 2)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf: int, nc: int, image_size: int, noisy: bool, dropout: float) -> None:
        super().__init__()
        n = LAYERS[image_size]
        self.noisy = noisy
        ch = ndf
        layers: list[nn.Module] = [nn.Conv2d(nc, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
        for _ in range(n - 2):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noisy:
            x = x + (0.2**0.5) * torch.randn(x.shape).to(x.device)
        return self.main(x)


def weights_init(m: nn.Module) -> None:
    name = m.__class__.__name__
    if "Conv" in name:
        m.weight.data.normal_(0.0, 0.02)
    elif "BatchNorm" in name:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class ImageFolderDataset(torch.utils.data.Dataset):
    """class sub-folders of image files; decode + resize + normalise on every access."""

    def __init__(self, root: Path, image_size: int) -> None:
        self.samples = sorted((p, i) for i, c in enumerate(sorted(d for d in root.iterdir() if d.is_dir())) for p in c.glob("*.png"))
        self.image_size = image_size
        if not self.samples:
            raise SystemExit(f"{root}: no class sub-folders with .png files")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, target = self.samples[index]
        img = Image.open(path)
        img = img.convert("L").resize((self.image_size, self.image_size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)  # ToTensor
        return (x - 0.5) / 0.5, target  # Normalize((0.5), (0.5))


def run(root: Path, *, image_size: int, ngf: int, ndf: int, batch_size: int, steps: int, warmup: int,
        lr_g: float = 1e-4, lr_d: float = 5e-5, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    device = torch.device("cpu")
    dataset = ImageFolderDataset(root, image_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    nz = 100
    net_g = RefGenerator(nz, ngf, 1, image_size).to(device)
    net_g.apply(weights_init)
    net_d = RefDiscriminator(ndf, 1, image_size, False, 0.25).to(device)
    net_d.apply(weights_init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=lr_d, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=lr_g, betas=(0.5, 0.999))
    done, images, t0 = 0, 0, 0.0
    while done < warmup + steps:
        for data in loader:
            if done == warmup:
                t0, images = time.perf_counter(), 0
            net_d.zero_grad()
            real = data[0].to(device)
            b = real.size(0)
            label = torch.full((b,), 1.0, dtype=torch.float, device=device)
            out = net_d(real).view(-1)
            err_real = criterion(out, label)
            err_real.backward()
            d_x = out.mean().item()
            noise = torch.randn(b, nz, 1, 1, device=device)
            fake = net_g(noise)
            label.fill_(0.0)
            out = net_d(fake.detach()).view(-1)
            err_fake = criterion(out, label)
            err_fake.backward()
            d_g_z1 = out.mean().item()
            err_d = err_real + err_fake
            opt_d.step()
            net_g.zero_grad()
            label.fill_(1.0)
            out = net_d(fake).view(-1)
            err_g = criterion(out, label)
            err_g.backward()
            d_g_z2 = out.mean().item()
            opt_g.step()
            _ = (err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2)
            images += b
            done += 1
            if done == warmup + steps:
                break
    dt = time.perf_counter() - t0
    return {"images_per_second": images / dt, "seconds": dt, "steps": steps, "images": images, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--ndf", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="pin torch threads (control run only; the reference does not)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(json.dumps(run(a.root, image_size=a.image_size, ngf=a.ngf, ndf=a.ndf, batch_size=a.batch_size, steps=a.steps, warmup=a.warmup)))


if __name__ == "__main__":
    main()
