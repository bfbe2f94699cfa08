#!/usr/bin/python3
"""Checks for test_export.sh: an exported network computes what nntrain computes.

  check_export.py compare CKPT ONNX NPZ DATA [NNEVAL_JSON]
      On DATA's test split: a float64 NumPy forward pass read straight from the checkpoint
      (the reference; convolutions worked in ONNX's own N, C, H, W order), the npz through
      scripts/model_numpy.py, and the ONNX graph through a NumPy interpreter of exactly the
      operators the exporter emits, written from the ONNX operator specification (after
      onnx.checker.check_model). Every sample: the same predicted class as the reference,
      probabilities within 1e-5. With NNEVAL_JSON (nneval --metrics): the reference's
      confusion matrix and accuracy equal nneval's exactly, its loss within 1e-5.
  check_export.py tamper CKPT WHAT   rewrite a copy of a checkpoint in place (activation, loss,
      version, weight, widths, nan; convs: a convolutional one's first padding) to make a bad input
Exit 0 when every check passes, 1 otherwise (one line per failure).
"""
import json
import os
import sys

import h5py
import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import model_numpy  # noqa: E402

TOL = 1e-5
failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
        print(f"FAIL: {message}")


ACT64 = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}


def reference(ckpt, x_uint8):
    """float64 forward pass from the checkpoint's own datasets and attributes."""
    with h5py.File(ckpt, "r") as f:
        m = f["model"]
        widths = [int(w) for w in m.attrs["widths"]]
        act, loss = m.attrs["activation"].decode(), m.attrs["loss"].decode()
        params = [(m[f"dense{k}/weight"][()].astype(np.float64), m[f"dense{k}/bias"][()].astype(np.float64))
                  for k in range(1, len(widths))]
        layers = [list(map(int, r)) for r in m.attrs["convs"]] if "convs" in m.attrs else []
        convs = [(m[f"conv{k}/weight"][()].astype(np.float64), m[f"conv{k}/bias"][()].astype(np.float64))
                 for k in range(1, 1 + sum(1 for r in layers if not r[0]))]
        image = [int(v) for v in m.attrs["image"]] if "image" in m.attrs else None
    f = ACT64[act]
    with np.errstate(over="ignore"):
        if image:
            x = np.concatenate([reference_features(x_uint8[i:i + 500], image, layers, convs, f)
                                for i in range(0, len(x_uint8), 500)])
        else:
            x = x_uint8.reshape(len(x_uint8), -1).astype(np.float64) / 255.0
        for k, (w, b) in enumerate(params, start=1):
            x = x @ w + b
            if k < len(params):
                x = f(x)
    if loss == "mse":
        return 1 / (1 + np.exp(-x)), loss
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), loss


def reference_features(x_uint8, image, layers, convs, f):
    """float64 [N, C, H, W] through the convolutions and pools; flattened as nntrain does (H, W, C
    after a convolution). A convolution: out[n, o, y, x] = b[o] + sum over (i, j, c) of
    in[n, c, y + i - pad, x + j - pad] * weight[i, j, c, o], zero outside the image."""
    x = x_uint8.reshape(len(x_uint8), *image).astype(np.float64) / 255.0
    conv = iter(convs)
    for pool, k, _, pad in layers:
        n, c, h, w = x.shape
        if pool:
            x = x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
            continue
        weight, bias = next(conv)
        xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
        xp[:, :, pad:pad + h, pad:pad + w] = x
        oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        y = np.zeros((n, len(bias), oh, ow)) + bias[None, :, None, None]
        for i in range(k):
            for j in range(k):
                y += np.einsum("nchw,co->nohw", xp[:, :, i:i + oh, j:j + ow], weight[i, j], optimize=True)
        x = f(y)
    return (x.transpose(0, 2, 3, 1) if convs else x).reshape(len(x), -1)


# The interpreter: only the operators export_model.py writes, with the semantics ONNX gives them.
def softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(node, x, w, b=None):
    """ONNX Conv, 2-D, group 1: x [N, C, H, W], w [M, C, kH, kW], pads [h_begin, w_begin, h_end, w_end]."""
    a = attrs(node)
    if a.get("group", 1) != 1 or any(v != 1 for v in a.get("strides", [1, 1]) + a.get("dilations", [1, 1])) \
            or a.get("auto_pad", b"NOTSET") != b"NOTSET":
        raise SystemExit(f"FAIL: {node.name}: Conv attributes {a} beyond what the interpreter implements")
    m, c, kh, kw = w.shape
    check(list(a.get("kernel_shape", [kh, kw])) == [kh, kw], f"{node.name}: kernel_shape is not the weights'")
    hb, wb, he, we = a.get("pads", [0, 0, 0, 0])
    xp = np.pad(x, ((0, 0), (0, 0), (hb, he), (wb, we)))
    oh, ow = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    y = np.zeros((x.shape[0], m, oh, ow), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,mc->nmhw", xp[:, :, i:i + oh, j:j + ow], w[:, :, i, j], optimize=True)
    return y + (b[None, :, None, None] if b is not None else np.float32(0))


def maxpool(node, x):
    """ONNX MaxPool, 2-D, no padding, floor: out = floor((H - kH) / sH) + 1."""
    a = attrs(node)
    if any(a.get("pads", [0])) or a.get("ceil_mode", 0) or any(v != 1 for v in a.get("dilations", [1])) \
            or a.get("auto_pad", b"NOTSET") != b"NOTSET":
        raise SystemExit(f"FAIL: {node.name}: MaxPool attributes {a} beyond what the interpreter implements")
    (kh, kw), (sh, sw) = a["kernel_shape"], a.get("strides", [1, 1])
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    return np.max([x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)], axis=0)


def flatten(node, x):
    axis = attrs(node).get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


OPS = {"MatMul": lambda n, a, b: a @ b, "Add": lambda n, a, b: a + b,
       "Relu": lambda n, a: np.maximum(a, np.float32(0)), "Tanh": lambda n, a: np.tanh(a),
       "Sigmoid": lambda n, a: np.float32(1) / (np.float32(1) + np.exp(-a)),
       "Softmax": lambda n, a: softmax(a, next((x.i for x in n.attribute if x.name == "axis"), -1)),
       "Conv": conv, "MaxPool": maxpool, "Flatten": flatten,
       "Transpose": lambda n, a: a.transpose(attrs(n)["perm"])}


def run_onnx(model, x):
    g = model.graph
    env = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    env[g.input[0].name] = x
    with np.errstate(over="ignore"):
        for node in g.node:  # ONNX requires topological order; check_model checked it
            if node.op_type not in OPS or node.domain not in ("", "ai.onnx"):
                raise SystemExit(f"FAIL: operator {node.domain}:{node.op_type} is not one the exporter emits")
            (out,) = node.output
            env[out] = OPS[node.op_type](node, *[env[i] for i in node.input])
            if env[out].dtype != np.float32:
                raise SystemExit(f"FAIL: {node.name} computed {env[out].dtype}, not float32")
    return env[g.output[0].name]


def check_graph(model, widths, act, loss, layers, image):
    onnx.checker.check_model(model, full_check=True)  # raises on an invalid model
    g = model.graph
    check([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13], "opset is not 13")
    check(len(g.input) == 1 and g.input[0].name == "input", "graph input is not one tensor 'input'")
    check(len(g.output) == 1 and g.output[0].name == "probabilities", "graph output is not 'probabilities'")
    for v, shape in ((g.input[0], image or [widths[0]]), (g.output[0], [widths[-1]])):
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        check(t.elem_type == onnx.TensorProto.FLOAT and dims == ["N"] + shape, f"{v.name}: {dims}, not float [N, {shape}]")
    hidden = {"sigmoid": "Sigmoid", "relu": "Relu", "tanh": "Tanh"}[act]
    want = []
    for row in layers:
        want += ["MaxPool"] if row[0] else ["Conv", hidden]
    if layers:
        want += (["Transpose"] if any(not row[0] for row in layers) else []) + ["Flatten"]
    for k in range(1, len(widths)):
        want += ["MatMul", "Add"] + ([hidden] if k < len(widths) - 1 else [])
    want.append("Softmax" if loss == "softmax" else "Sigmoid")
    check([n.op_type for n in g.node] == want, f"operators {[n.op_type for n in g.node]}, expected {want}")
    meta = {p.key: p.value for p in model.metadata_props}
    check(meta.get("input_scale") == "1/255" and "1/255" in meta.get("input", ""), "no input convention in metadata")


def compare(ckpt, onnx_path, npz_path, data, nneval_json=None):
    with h5py.File(data, "r") as f:
        images, labels = f["test/images"][()], f["test/labels"][()].astype(np.int64)
    ref, loss = reference(ckpt, images)
    with h5py.File(ckpt, "r") as f:
        m = f["model"]
        widths = [int(w) for w in m.attrs["widths"]]
        act = m.attrs["activation"].decode()
        layers = [list(map(int, r)) for r in m.attrs["convs"]] if "convs" in m.attrs else []
        image = [int(v) for v in m.attrs["image"]] if "image" in m.attrs else None
    ref_class = ref.argmax(axis=1)
    x = model_numpy.pixels(images)
    check(np.array_equal(x, images.reshape(len(images), -1).astype(np.float32) * np.float32(1 / 255)),
          "model_numpy.pixels differs from nntrain's scaling")
    npz = model_numpy.load(npz_path)
    check(float(npz["input_scale"]) == float(np.float32(1 / 255)), "npz input_scale is not float32(1/255)")
    model = onnx.load(onnx_path)
    check_graph(model, widths, act, loss, layers, image)
    x_onnx = x.reshape(len(x), *image) if image else x
    results = {"npz": model_numpy.forward(npz, x), "onnx": run_onnx(model, x_onnx)}
    one = run_onnx(model, x_onnx[:1])  # the batch dimension is free: one sample alone
    check(np.allclose(one, results["onnx"][:1], rtol=0, atol=1e-7), "onnx: one sample alone differs from in a batch")
    for name, p in results.items():
        check(p.dtype == np.float32 and p.shape == ref.shape, f"{name}: {p.dtype} {p.shape}, not float32 {ref.shape}")
        diff = float(np.abs(p.astype(np.float64) - ref).max())
        mismatched = int((p.argmax(axis=1) != ref_class).sum())
        check(diff <= TOL, f"{name}: probabilities differ from the reference by {diff:.3g} > {TOL}")
        check(mismatched == 0, f"{name}: {mismatched} of {len(ref)} samples predicted another class than the reference")
        print(f"{name}: {len(ref)} samples, same class as the reference for {len(ref) - mismatched}, "
              f"max |p - p_ref| {diff:.2e}")
    if nneval_json:
        with open(nneval_json) as fh:
            ev = json.load(fh)
        classes = widths[-1]
        confusion = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(confusion, (labels, ref_class), 1)
        accuracy = float((ref_class == labels).mean())
        if loss == "softmax":
            ref_loss = float(-np.log(ref[np.arange(len(ref)), labels]).mean())
        else:
            ref_loss = float((0.5 * (ref - np.eye(classes)[labels]) ** 2).sum(axis=1).mean())
        check(ev["samples"] == len(labels), f"nneval scored {ev['samples']} samples, not {len(labels)}")
        check(np.array_equal(np.array(ev["confusion"]), confusion), "confusion matrix differs from nneval's")
        check(ev["accuracy"] == accuracy, f"accuracy {accuracy} differs from nneval's {ev['accuracy']}")
        check(abs(ev["loss"] - ref_loss) <= TOL * max(1.0, abs(ref_loss)),
              f"loss {ref_loss} differs from nneval's {ev['loss']}")
        print(f"nneval: accuracy {100 * ev['accuracy']:.2f}%, loss {ev['loss']:.6f}; reference: "
              f"accuracy {100 * accuracy:.2f}%, loss {ref_loss:.6f}; confusion matrices equal: "
              f"{np.array_equal(np.array(ev['confusion']), confusion)}")


def tamper(ckpt, what):
    with h5py.File(ckpt, "r+") as f:
        m = f["model"]
        if what == "activation":
            m.attrs["activation"] = np.bytes_("swish")  # a new attribute: the old one may be too short
        elif what == "loss":
            m.attrs["loss"] = np.bytes_("hinge")
        elif what == "version":
            f.attrs.modify("format_version", np.int64(3))
        elif what == "convs":  # the first convolution unpadded: the network no longer fits widths[0]
            rows = m.attrs["convs"].copy()
            rows[0, 3] = 0
            m.attrs.modify("convs", rows)
        elif what == "weight":  # one weight changed, the checksum not
            w = m["dense1/weight"]
            w[0, 0] = w[0, 0] + np.float32(0.5)
        elif what == "widths":
            m.attrs.modify("widths", np.array([int(v) + 1 for v in m.attrs["widths"]], dtype=np.int32))
        elif what == "nan":  # a non-finite weight with a matching checksum
            import zlib
            w = m["dense1/weight"]
            w[0, 0] = np.float32("nan")
            crc = zlib.crc32(b"")
            for k in range(1, len(m.attrs["widths"])):
                for name in ("weight", "bias"):
                    crc = zlib.crc32(np.ascontiguousarray(m[f"dense{k}/{name}"][()], "<f4").tobytes(), crc)
            m.attrs.modify("checksum", np.int64(crc))
        else:
            raise SystemExit(f"tamper: unknown {what}")


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "compare":
        compare(*sys.argv[2:7])
    elif len(sys.argv) == 4 and sys.argv[1] == "tamper":
        tamper(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
    sys.exit(1 if failures else 0)
