"""The reference for `mpq_bench data`: a torchvision DataLoader with PIL on the same image folder,
ImageFolder + Resize(256) + CenterCrop(224) + ToTensor + Normalize, batch 64, the same number of
workers. Prints images/s (best of two passes after one warm-up pass), one line per worker count.

usage: bench_data_torchvision.py DIR WORKERS...
"""
import sys
import time

import torch
import torchvision
import torchvision.transforms as T

torch.set_num_threads(1)
root = sys.argv[1]
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
ds = torchvision.datasets.ImageFolder(root, transform=tf)
for w in [int(x) for x in sys.argv[2:]]:
    # workers=1 means one process decoding, as mpq's one thread (num_workers=0 would decode in
    # the consumer itself, without overlap)
    dl = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=w, shuffle=False)
    rates = []
    for rep in range(3):
        t0 = time.time()
        n = 0
        for x, y in dl:
            n += x.shape[0]
        rates.append(n / (time.time() - t0))
    print(f"{w}\t{max(rates[1:]):.0f}")
