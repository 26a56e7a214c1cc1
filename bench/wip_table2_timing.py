import os, sys, time, json
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np, pandas as pd
from dataclasses import replace
from cytobook.profiles import get_profile
from cytobook.datasets.wbc import WBC_CLASSES, CAM16_CLASSES
from cytobook.models.unet import unet_from_spec, train_multitask, predict_multitask, transfer_weights
run = "/tmp/exp/runs/20261204-053613-demo"
table = pd.read_csv(f"{run}/artifacts/20_wbc_unet_data/course_copy.csv")
spec = get_profile("demo").unet
kw = dict(a.split("=") for a in sys.argv[1:])
if "size" in kw: spec = replace(spec, image_size=int(kw["size"]))
if "lr" in kw: spec = replace(spec, learning_rate=float(kw["lr"]))
min_steps = int(kw.get("min_steps", 0))
fractions = [int(f) for f in kw.get("fractions", "1,10,50,100").split(",")]
settings = [(p == "1", m == "1") for p, m in (s.split("") if False else (s[0], s[1]) for s in kw.get("settings", "00,01,10,11").split(","))]
cells = table[table["source"] == "wbc"]
val = cells[cells["split"] == "val"]
labels = val["label"].to_numpy(int)
for fraction in fractions:
    train = cells[(cells["split"] == "train") & (cells["fraction"] == fraction)]
    steps_per_epoch = -(-len(train) // spec.batch_size)
    epochs = max(spec.epochs, -(-min_steps // steps_per_epoch))
    for pretrain, masks in settings:
        t = time.time()
        model = unet_from_spec(spec, len(WBC_CLASSES), masks=masks, seed=0)
        if pretrain:
            src = unet_from_spec(spec, len(CAM16_CLASSES), masks=True, seed=0)
            src.load_weights(f"{run}/artifacts/21_wbc_unet_pretraining/prcc_cam16.weights.h5")
            transfer_weights(src, model)
        h = train_multitask(model, train, None, spec, n_classes=len(WBC_CLASSES), seed=0, epochs=epochs, verbose=0)
        p = predict_multitask(model, val, spec, n_classes=len(WBC_CLASSES))["probabilities"].argmax(1)
        acc = float(np.mean(p == labels))
        print(f"WBC_{fraction} n={len(train)} epochs={epochs} pretrain={pretrain} masks={masks} acc={acc:.3f} "
              f"classes={np.bincount(p, minlength=5).tolist()} ce={h['cross_entropy'][-1]:.3f} {time.time()-t:.1f}s", flush=True)
