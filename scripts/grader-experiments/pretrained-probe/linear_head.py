"""Linear (logistic-regression) head on probe.py features: C chosen on a 10% holdout of the train sources, valid scored once.
   python3 linear_head.py FEATS.npz"""
import numpy as np, sys
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import accuracy_score, f1_score, cohen_kappa_score, roc_auc_score
d = np.load(sys.argv[1]); x, split, src, y = d["x"], d["split"], d["src"], d["y"]
rng = np.random.default_rng(1)
tr_src = np.unique(src[split == "train"]); rng.shuffle(tr_src)
hold_src = set(tr_src[: len(tr_src) // 10])
hold = np.array([s in hold_src for s in src]) & (split == "train")
tr = (split == "train") & ~hold
va = split == "valid"
sc = StandardScaler().fit(x[tr])
def rep(name, m, mask):
    p = m.predict_proba(sc.transform(x[mask])); yh = p.argmax(1)
    return f"{name}: n={mask.sum()} acc {accuracy_score(y[mask], yh):.3f} macroF1 {f1_score(y[mask], yh, average='macro'):.3f} kappa {cohen_kappa_score(y[mask], yh, weights='quadratic'):.3f} AUC {roc_auc_score(y[mask], p, multi_class='ovr'):.3f}"
best = None
for C in [0.001, 0.003, 0.01, 0.03, 0.1]:
    m = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(sc.transform(x[tr]), y[tr])
    r = rep(f"C={C} holdout", m, hold); print(r)
    acc = accuracy_score(y[hold], m.predict(sc.transform(x[hold])))
    if best is None or acc > best[0]: best = (acc, C, m)
print("selected on holdout: C =", best[1]); print(rep("valid (once)", best[2], va))
