#!/usr/bin/python3
"""Export the network of an nntrain checkpoint for use elsewhere.

usage: scripts/export_model.py CHECKPOINT [--onnx OUT.onnx] [--npz OUT.npz]

  --onnx FILE   ONNX model (opset 13): input "input" float32 [N, widths[0]] (a convolutional
                network: [N, C, H, W]), Conv (+ activation) and MaxPool per conv and pool layer,
                then Transpose + Flatten, then MatMul + Add per dense layer, the hidden activation
                between them, output "probabilities" float32 [N, classes] (Softmax; Sigmoid for
                a checkpoint trained with --loss mse)
  --npz FILE    NumPy arrays; scripts/model_numpy.py is the forward pass that reads them

The input both expect is what nntrain feeds its first layer: each sample's uint8 pixels,
row-major (C, H, W), times float32(1/255) (so 0..1; model_numpy.pixels does it).
The checkpoint (format 1, or 2 with convolutions) is checked first (format version, widths,
convolutions and shapes, activation, loss, the CRC-32 of the parameters). An output is never
the checkpoint itself (compared by device and inode: a symlink or hard link counts), never the
other output nor its FILE.tmp (by device and inode, and one not made yet by its directory's
device and inode and its name: a directory under two bind-mounted names is one), never a
non-regular file, and replaces only an earlier export of the same kind
(or an empty file), keeping its mode, owner and group (where the process may) and POSIX ACL
(a new file: 0666 less the umask); a symbolic link is written through (its target replaced,
the link kept). Each output is written to FILE.tmp beside the file and renamed into place,
so a failure or a signal leaves the old file as it was; a killed export's FILE.tmp is
replaced, anything else there is refused. Just before the rename each output is looked at
again: only the file checked at start, unchanged (device, inode, size), in the directory of
the start, is replaced, and where there was none a new one is made only while the name is
still free; a file made, replaced or written into there during the export, or the directory
moved away, is kept (exit 1, no output changed). One export per output: each is locked as
nntrain locks its checkpoint (an fcntl lock on FILE.lock beside the file, naming its holder,
removed at the end), so that a second export, or an nntrain, nneval or nnprep, given the same
file is refused (exit 2: "--onnx m.onnx: in use by another run (PID 42 on host n07; lock
file m.onnx.lock); give this run another file") and never touches the first's FILE.tmp.
Exit status: 0 success, 1 runtime failure (a write failed, an output changed during the
export, an output could not be locked, a Python package is missing),
2 bad usage or bad input, or an output in use by another run (one line on stderr each), 128 + the signal when stopped by
SIGINT, SIGTERM, SIGHUP or SIGUSR1 (one line, naming the outputs already put in place, if
any; no temporary file left; a signal ignored at start, as nohup does, stays ignored).
Needs python3-numpy and python3-h5py (Debian), and python3-onnx for --onnx.
"""
import argparse
import functools
import io
import os
import signal
import sys
import zipfile
import zlib

# the outputs rule (shared with scaling.sh) beside this file, wherever the caller is: run as a
# script or loaded by path (tests/test_export.sh), and before any installed module of that name
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nn_outputs  # noqa: E402
from nn_outputs import Refusal  # noqa: E402  bad usage or input: exit 2, one line

PROG = "export_model.py"
FORMAT = "nntrain-export 1"        # dense networks
FORMAT_CONV = "nntrain-export 2"   # with convolutions: image, convs, convK_weight, convK_bias
PRODUCER = "nntrain export_model.py"
ACTIVATIONS = ("sigmoid", "relu", "tanh")
OUTPUT_OF_LOSS = {"softmax": "softmax", "mse": "sigmoid"}  # mse trains sigmoid outputs
OPSET = 13


class Interrupted(BaseException):
    """SIGINT, SIGTERM, SIGHUP or SIGUSR1, raised where the program is (a BaseException, so
    that no `except Exception` swallows it): main removes its temporary files and exits
    128 + signal."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


# the stop signals of nntrain, nneval and nnprep (src/signals.c): SIGUSR1 is Slurm's warning
# before preemption or the time limit (--signal=USR1@120), which a job may send to its steps
STOP_SIGNALS = nn_outputs.STOP_SIGNALS


def on_signal(signum, frame):
    # put off while nn_outputs holds the stop signals (a file made and not yet recorded, or
    # put in place and not yet marked so), where another thread took this one
    if not nn_outputs.put_off(signum):
        raise Interrupted(signum)


def fail(message, code):
    """MESSAGE as one line on stderr (a path's control characters written out, as the C
    tools do), then exit CODE."""
    print(f"{PROG}: {nn_outputs.one_line(message)}", file=sys.stderr)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        fail(f"{message} (see --help)", 2)


def parse(argv):
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="\n\n".join(__doc__.split("\n\n")[3:]))
    p.add_argument("checkpoint", help="checkpoint written by nntrain (--checkpoint FILE)")
    p.add_argument("--onnx", metavar="FILE", help="write the network as an ONNX model")
    p.add_argument("--npz", metavar="FILE", help="write the weights as a NumPy .npz")
    a = p.parse_args(argv)
    if not a.onnx and not a.npz:
        p.error("nothing to do: give --onnx FILE and/or --npz FILE")
    for name in ("checkpoint", "onnx", "npz"):
        if getattr(a, name) == "":
            p.error(f"{'' if name == 'checkpoint' else '--'}{name}: empty path")
    return a


# ---- the checkpoint -------------------------------------------------------------------

def text(value):
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def read_checkpoint(path, np, h5py):
    """The network of checkpoint PATH: dict with widths, activation, loss, weights, biases, info."""
    if not os.path.exists(path):
        raise Refusal(f"{path}: cannot read checkpoint: no such file")
    if not os.path.isfile(path):
        raise Refusal(f"{path}: cannot read checkpoint: not a regular file")
    if not os.access(path, os.R_OK):
        raise Refusal(f"{path}: cannot read checkpoint: permission denied")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as e:
        raise Refusal(f"{path}: cannot read checkpoint: {e.strerror or e}")
    if not is_hdf5:
        raise Refusal(f"{path}: not a valid checkpoint: truncated or not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise Refusal(f"{path}: not a valid checkpoint: truncated or not an HDF5 file")
    try:
        with f:
            return checked_network(path, f, np, h5py)
    except (OSError, KeyError, ValueError, TypeError) as e:  # a file h5py cannot read through
        raise Refusal(f"{path}: not a valid checkpoint: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def attr(path, f, group, name):
    obj = f.get(group)
    if obj is None or name not in obj.attrs:
        raise Refusal(f"{path}: not a valid checkpoint: no attribute {name} on {group}")
    return obj.attrs[name]


def checked_network(path, f, np, h5py):
    version = attr(path, f, "/", "format_version")
    if np.ndim(version) != 0 or not np.issubdtype(np.asarray(version).dtype, np.integer):
        raise Refusal(f"{path}: not a valid checkpoint: bad format_version")
    if int(version) not in (1, 2):
        raise Refusal(f"{path}: checkpoint format version {int(version)}, this exporter reads versions 1 and 2")
    widths = np.asarray(attr(path, f, "/model", "widths"))
    if widths.ndim != 1 or len(widths) < 2 or not np.issubdtype(widths.dtype, np.integer) or (widths < 1).any():
        raise Refusal(f"{path}: not a valid checkpoint: bad /model/widths")
    widths = [int(w) for w in widths]
    activation = text(attr(path, f, "/model", "activation"))
    if activation not in ACTIVATIONS:
        raise Refusal(f"{path}: not a valid checkpoint: unknown activation '{activation}' "
                      f"(expected {'|'.join(ACTIVATIONS)})")
    loss = text(attr(path, f, "/model", "loss"))
    if loss not in OUTPUT_OF_LOSS:
        raise Refusal(f"{path}: not a valid checkpoint: unknown loss '{loss}' (expected softmax|mse)")
    image, convs = conv_layout(path, f, np, int(version), widths[0])
    crc = zlib.crc32(b"")
    # parameters in the model's order, which their CRC-32 follows: convolutions first
    conv_shapes = [((c["k"], c["k"], c["in_c"], c["channels"]), (c["channels"],)) for c in convs if not c["pool"]]
    conv_params, crc = read_layers(path, f, np, h5py, "conv", conv_shapes, crc)
    dense_shapes = [((widths[k - 1], widths[k]), (widths[k],)) for k in range(1, len(widths))]
    dense_params, crc = read_layers(path, f, np, h5py, "dense", dense_shapes, crc)
    for kind, count in (("conv", len(conv_shapes)), ("dense", len(dense_shapes))):
        if f.get(f"/model/{kind}{count + 1}") is not None:
            raise Refusal(f"{path}: not a valid checkpoint: /model/{kind}{count + 1} beyond the network's {count}")
    arrays = [a for pair in conv_params + dense_params for a in pair]
    n_params = sum(a.size for a in arrays)
    if int(attr(path, f, "/model", "n_params")) != n_params:
        raise Refusal(f"{path}: not a valid checkpoint: n_params is not {n_params}")
    stored = int(attr(path, f, "/model", "checksum")) & 0xFFFFFFFF
    if stored != crc:
        raise Refusal(f"{path}: parameter checksum mismatch (stored {stored:08x}, computed {crc:08x}): "
                      "the file is corrupted")
    if not all(np.isfinite(a).all() for a in arrays):
        raise Refusal(f"{path}: not a valid checkpoint: parameters that are not finite")
    info = {"nntrain_version": text(f.attrs.get("nntrain_version", b"")),
            "epochs_completed": str(int(f["progress"].attrs.get("epochs_completed", -1))) if "progress" in f else "",
            "trained_on": text(f["options"].attrs.get("data", b"")) if "options" in f else ""}
    for c, (w, b) in zip([c for c in convs if not c["pool"]], conv_params):
        c["weight"], c["bias"] = w, b
    return {"widths": widths, "activation": activation, "loss": loss, "output": OUTPUT_OF_LOSS[loss],
            "weights": [w for w, _ in dense_params], "biases": [b for _, b in dense_params],
            "image": image, "convs": convs, "info": info}


def read_layers(path, f, np, h5py, kind, shapes, crc):
    """/model/{kind}K/weight and bias for K = 1.. with the given shapes, as float32, and the CRC."""
    params = []
    for k, pair in enumerate(shapes, start=1):
        arrays = []
        for name, shape in zip(("weight", "bias"), pair):
            ds = f.get(f"/model/{kind}{k}/{name}")
            if not isinstance(ds, h5py.Dataset) or ds.shape != shape or ds.dtype.kind != "f":
                raise Refusal(f"{path}: not a valid checkpoint: missing, misshapen or unreadable "
                              f"/model/{kind}{k}/{name} (expected float {list(shape)})")
            array = np.ascontiguousarray(ds[()], dtype="<f4")
            crc = zlib.crc32(array.tobytes(), crc)
            arrays.append(array)
        params.append(tuple(arrays))
    return params, crc


def conv_layout(path, f, np, version, flat_width):
    """Format 2: the input image (c, h, w) and one dict per conv or pool, each with the shape it
    takes (in_c, in_h, in_w) and whether that input is still the data's CHW layout (a conv
    writes HWC, channels last); the last one's output must flatten to widths[0]. Format 1: none."""
    if version == 1:
        return None, []
    bad = f"{path}: not a valid checkpoint: bad /model/convs or /model/image"
    image = np.asarray(attr(path, f, "/model", "image"))
    rows = np.asarray(attr(path, f, "/model", "convs"))
    if (image.shape != (3,) or not np.issubdtype(image.dtype, np.integer) or (image < 1).any() or rows.ndim != 2
            or rows.shape[1] != 4 or not 1 <= len(rows) <= 8 or not np.issubdtype(rows.dtype, np.integer)):
        raise Refusal(bad)
    c, h, w = (int(v) for v in image)
    chw, convs = True, []
    for pool, k, channels, pad in rows.tolist():
        layer = {"pool": pool == 1, "in_c": c, "in_h": h, "in_w": w, "in_chw": chw}
        if pool == 1:
            if h < 2 or w < 2:
                raise Refusal(bad)
            h, w = h // 2, w // 2
        elif pool == 0 and 1 <= k <= 64 and channels >= 1 and 0 <= pad < k and k <= min(h, w) + 2 * pad:
            layer.update(k=k, channels=channels, pad=pad)
            c, h, w, chw = channels, h + 2 * pad - k + 1, w + 2 * pad - k + 1, False
        else:
            raise Refusal(bad)
        convs.append(layer)
    if c * h * w != flat_width:
        raise Refusal(f"{path}: not a valid checkpoint: the convolutions flatten to {c * h * w} values, "
                      f"/model/widths begins with {flat_width}")
    return (int(image[0]), int(image[1]), int(image[2])), convs


# ---- the outputs ----------------------------------------------------------------------

def is_earlier_export(path, kind):
    """Whether regular file PATH is empty or an earlier export of KIND (the only files replaced)."""
    if os.path.getsize(path) == 0:
        return True
    try:
        if kind == "npz":
            with zipfile.ZipFile(path) as z:
                if "format.npy" not in z.namelist():
                    return False
            import numpy as np
            with np.load(path, allow_pickle=False) as f:
                return str(f["format"]) in (FORMAT, FORMAT_CONV)
        import onnx
        with open(path, "rb") as fh:
            if fh.read(1) != b"\x08":  # an export starts with its ir_version field: not ours
                return False
            fh.seek(0)
            model = onnx.ModelProto()
            model.ParseFromString(fh.read())
        return model.producer_name == PRODUCER
    except Exception:  # not a zip, not a protobuf, not ours: not replaced
        return False


def check_outputs(checkpoint, outputs):
    """Refuse (exit 2) an output that is an input, the other output, not regular, or not ours.
    Names are compared as directory entries (nn_outputs.entry: the directory's device and
    inode, and the name), so that one not made yet is known under another name too (a
    directory bind-mounted at a second path; until 2026-12-07 its real paths were compared,
    and the second output was written over the first), and files by device and inode."""
    ck = os.stat(checkpoint)
    seen = {}
    # each output is built as REAL.tmp: that name must be no other output nor the checkpoint's
    temporaries = {nn_outputs.temporary_entry(path): option for option, path, kind in outputs}
    temporaries.pop(None, None)
    # ... and locked at FILE.lock, which the lock makes, overwrites and removes: no other output
    locks = {nn_outputs.entry(nn_outputs.lock_name(path)): option for option, path, kind in outputs}
    locks.pop(None, None)
    for option, path, kind in outputs:
        key = nn_outputs.entry(path)
        if key is not None and (key in temporaries or key == nn_outputs.temporary_entry(checkpoint)):
            other = temporaries.get(key)
            raise Refusal(f"--{option} {path}: is the temporary file of "
                          + (f"--{other}'s output" if other else "the checkpoint's name") + "; give another name")
        if key is not None and key in locks:
            raise Refusal(f"--{option} {path}: is the lock file of --{locks[key]}'s output; give another name")
    for option, path, kind in outputs:
        # by name (also where the directory cannot be reached), by directory entry, and by
        # device and inode (a hard link) when it exists
        keys = {("path", os.path.realpath(path)), nn_outputs.entry(path), nn_outputs.inode(path)} - {None}
        other = next((seen[key] for key in keys if key in seen), None)
        if other:
            raise Refusal(f"--{option} {path}: the same file as --{other}")
        seen.update(dict.fromkeys(keys, option))
        check_output(ck, option, path, kind)


def check_output(ck, option, path, kind):
    """Refuse (exit 2) output PATH where it is checkpoint CK (its os.stat), not a regular file
    or not ours; made again by open_temporary once the file is held."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise Refusal(f"--{option} {path}: a dangling symbolic link; not writing through it")
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise Refusal(f"--{option} {path}: no such directory {parent}")
        return
    except OSError as e:
        raise Refusal(f"--{option} {path}: {e.strerror}")
    if (st.st_dev, st.st_ino) == (ck.st_dev, ck.st_ino):
        raise Refusal(f"--{option} {path}: is the checkpoint being exported; not overwriting it")
    nn_outputs.check_replaceable(f"--{option} {path}", path, functools.partial(is_earlier_export, kind=kind),
                                 f"holds something other than an earlier {kind} export; not overwriting it")


def is_partial_export(path):
    """Whether regular file PATH begins as this exporter's outputs do, so that it is a killed
    export's FILE.tmp: empty, or an .npz whose first member is format.npy (np.savez writes the
    arrays in order, "format" first), or an ONNX model with ir_version 7 then our producer."""
    with open(path, "rb") as f:
        head = f.read(64)
    onnx_head = b"\x08\x07\x12" + bytes([len(PRODUCER)]) + PRODUCER.encode()
    return (head == b"" or (head[:4] == b"PK\x03\x04" and head[30:40] == b"format.npy")
            or onnx_head.startswith(head[:len(onnx_head)]))


def open_temporary(checkpoint, option, path, kind, temporaries, lock):
    """PATH's temporary file (nn_outputs.open_temporary: REAL.tmp, a killed export's replaced,
    anything else there refused; LOCK, PATH's nn_outputs.Lock, held), created now, so that a directory we cannot write fails
    first, and added to TEMPORARIES as it is made (no stop signal between), for the clean-up
    and for the outcome (each Temporary says whether it was put in place). The output is
    checked again (check_output) once its file is held: the file held is the one checked."""
    ck = os.stat(checkpoint)
    try:
        nn_outputs.open_temporary(f"--{option} {path}", path, is_partial_export, "a file this exporter",
                                  lambda p: check_output(ck, option, p, kind), temporaries.append, lock=lock)
    except OSError as e:
        raise Refusal(f"--{option} {path}: cannot write in {os.path.dirname(os.path.realpath(path))}: {e.strerror}")


def npz_arrays(net, np):
    arrays = {"format": np.array(FORMAT_CONV if net["convs"] else FORMAT),
              "widths": np.array(net["widths"], dtype=np.int32),
              "activation": np.array(net["activation"]), "output": np.array(net["output"]),
              "input_scale": np.array(1 / 255, dtype=np.float32)}
    if net["convs"]:
        arrays["image"] = np.array(net["image"], dtype=np.int32)
        arrays["convs"] = np.array([[1, 0, 0, 0] if c["pool"] else [0, c["k"], c["channels"], c["pad"]]
                                    for c in net["convs"]], dtype=np.int32)
        for k, c in enumerate([c for c in net["convs"] if not c["pool"]], start=1):
            arrays[f"conv{k}_weight"], arrays[f"conv{k}_bias"] = c["weight"], c["bias"]
    for k, (w, b) in enumerate(zip(net["weights"], net["biases"]), start=1):
        arrays[f"weight{k}"], arrays[f"bias{k}"] = w, b
    return arrays


def input_shape(net):
    return list(net["image"]) if net["convs"] else [net["widths"][0]]


def input_convention(net):
    if net["convs"]:
        c, h, w = net["image"]
        return (f"float32 [N, {c}, {h}, {w}]: each sample's uint8 pixels (C, H, W), times float32(1/255) "
                "(0..1), as nntrain scales them")
    return (f"float32 [N, {net['widths'][0]}]: each sample's uint8 pixels flattened row-major, times "
            "float32(1/255) (0..1), as nntrain scales them")


def network_text(net):
    """784-50-100-10, or 1x28x28-conv5x5x32p2-pool2-...-6272-1024-10 with convolutions."""
    items = []
    if net["convs"]:
        items.append("x".join(map(str, net["image"])))
        items += ["pool2" if c["pool"] else f"conv{c['k']}x{c['k']}x{c['channels']}" + (f"p{c['pad']}" if c["pad"] else "")
                  for c in net["convs"]]
    return "-".join(items + [str(w) for w in net["widths"]])


def onnx_conv_nodes(net, helper, numpy_helper, act_op):
    """Conv (+ activation) and MaxPool nodes from "input" [N, C, H, W], then the flatten in
    nntrain's order: channels last (HWC) after a convolution, the data's CHW before any."""
    nodes, inits, x, k = [], [], "input", 0
    for i, c in enumerate(net["convs"], start=1):
        if c["pool"]:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}.out"], name=f"pool{i}", kernel_shape=[2, 2],
                                          strides=[2, 2]))  # floor: an odd last row or column is dropped
            x = f"pool{i}.out"
            continue
        k += 1
        w, b = f"conv{k}.weight", f"conv{k}.bias"
        # nntrain's [kh, kw, in_c, out_c] is ONNX's [out_c, in_c, kh, kw]; both cross-correlate
        inits += [numpy_helper.from_array(c["weight"].transpose(3, 2, 0, 1).copy(), w),
                  numpy_helper.from_array(c["bias"], b)]
        nodes.append(helper.make_node("Conv", [x, w, b], [f"conv{k}.out"], name=f"conv{k}",
                                      kernel_shape=[c["k"], c["k"]], pads=[c["pad"]] * 4))
        nodes.append(helper.make_node(act_op, [f"conv{k}.out"], [f"conv{k}.{net['activation']}"],
                                      name=f"conv{k}_{net['activation']}"))
        x = f"conv{k}.{net['activation']}"
    if any(not c["pool"] for c in net["convs"]):
        nodes.append(helper.make_node("Transpose", [x], ["channels_last"], name="channels_last", perm=[0, 2, 3, 1]))
        x = "channels_last"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    return nodes, inits, "flat"


def onnx_model(net, checkpoint):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    widths = net["widths"]
    act_op = {"sigmoid": "Sigmoid", "relu": "Relu", "tanh": "Tanh"}[net["activation"]]
    nodes, inits, x = onnx_conv_nodes(net, helper, numpy_helper, act_op) if net["convs"] else ([], [], "input")
    layers = len(widths) - 1
    for k in range(1, layers + 1):
        w, b = f"dense{k}.weight", f"dense{k}.bias"
        inits += [numpy_helper.from_array(net["weights"][k - 1], w), numpy_helper.from_array(net["biases"][k - 1], b)]
        nodes.append(helper.make_node("MatMul", [x, w], [f"dense{k}.matmul"], name=f"dense{k}_matmul"))
        out = f"dense{k}.out" if k < layers else "logits"
        nodes.append(helper.make_node("Add", [f"dense{k}.matmul", b], [out], name=f"dense{k}_add"))
        x = out
        if k < layers:
            nodes.append(helper.make_node(act_op, [x], [f"dense{k}.{net['activation']}"], name=f"dense{k}_{net['activation']}"))
            x = f"dense{k}.{net['activation']}"
    if net["output"] == "softmax":
        nodes.append(helper.make_node("Softmax", [x], ["probabilities"], name="softmax", axis=1))
    else:
        nodes.append(helper.make_node("Sigmoid", [x], ["probabilities"], name="sigmoid_output"))
    desc = network_text(net) + f" {net['activation']}/{net['loss']}"
    graph = helper.make_graph(
        nodes, "nntrain_cnn" if net["convs"] else "nntrain_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N"] + input_shape(net))],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", widths[-1]])], inits,
        doc_string=f"nntrain network {desc}. input: {input_convention(net)}. probabilities: "
                   + ("softmax over the classes" if net["output"] == "softmax" else "sigmoid of each output unit"))
    graph.input[0].doc_string = input_convention(net)
    model = helper.make_model(graph, producer_name=PRODUCER, producer_version=FORMAT_CONV if net["convs"] else FORMAT,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7  # the IR of opset 13: readable by older runtimes too
    meta = {"widths": ",".join(map(str, widths)), "activation": net["activation"], "loss": net["loss"],
            "output": net["output"], "input": input_convention(net), "input_scale": "1/255",
            "checkpoint": os.path.basename(checkpoint), **net["info"]}
    if net["convs"]:
        meta["network"] = network_text(net)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def main(argv):
    # first thing: a signal from here on removes what we created and exits 128 + signal
    # (one ignored at start stays ignored, as nohup and a shell's background jobs mean)
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, on_signal)
    temporaries, locks, made = [], [], []
    try:
        try:
            return export(parse(argv), temporaries, locks)
        finally:
            # one step, stop signals held: a signal here is handled once the FILE.tmp are
            # removed and the locks let go (below), never between them nor as a traceback
            # (until 2026-12-07 one there printed a traceback after "wrote", exit 1, and
            # left the lock file)
            with nn_outputs.signals_held():
                made[:] = temporaries  # what each output is now, for the message: they are let go here
                nn_outputs.abandon_all(temporaries)  # first: a FILE.tmp is removed while its lock is held
                release_locks(locks)
    except Interrupted as e:
        for sig in STOP_SIGNALS:  # a second signal must not cut the message short
            signal.signal(sig, signal.SIG_IGN)
        fail(f"stopped by {signal.Signals(e.signum).name}; {outcome(made)}", 128 + e.signum)


def outcome(temporaries):
    """What a stop left: no output changed, or those written and those left as they were.
    Until 2026-12-07 a signal just after an output's rename said "no output changed"."""
    done, left = nn_outputs.written(temporaries), [t.path for t in temporaries if not t.installed]
    if not done:
        return "no output changed"
    return f"wrote {', '.join(done)}" + (f"; {', '.join(left)} left as it was" if left else "")


def release_locks(locks):
    """The outputs' locks let go, each lock file removed where it is still the one locked
    (nn_outputs.Lock.release), after their temporary files (nn_outputs.abandon_all)."""
    while locks:
        locks.pop().release()


def export(a, temporaries, locks):
    try:
        import numpy as np
        import h5py
        if a.onnx:
            import onnx  # noqa: F401
    except ImportError as e:
        fail(f"needs Python package {e.name} (Debian: apt-get install python3-numpy python3-h5py"
             f"{' python3-onnx' if a.onnx else ''}); run with /usr/bin/python3", 1)
    outputs = [(kind, getattr(a, kind), kind) for kind in ("onnx", "npz") if getattr(a, kind)]
    try:
        net = read_checkpoint(a.checkpoint, np, h5py)
        check_outputs(a.checkpoint, outputs)
        # each output locked before its FILE.tmp is looked at (a live export's is never taken
        # for a killed one's, nor one being written by an nntrain, nneval or nnprep): until
        # 2026-12-07 there was no lock, a second export removed the first's FILE.tmp, and
        # the first put the second's unfinished file in place (empty, 0600), saying "wrote"
        for option, path, kind in outputs:
            nn_outputs.lock(f"--{option} {path}", path, locks.append)
        for (option, path, kind), held in zip(outputs, locks):
            open_temporary(a.checkpoint, option, path, kind, temporaries, held)
    except Refusal as e:  # Busy too: another run's output
        nn_outputs.abandon_all(temporaries)
        fail(str(e), 2)
    except (nn_outputs.Changed, nn_outputs.LockFailed) as e:  # changed between the checks: kept
        nn_outputs.abandon_all(temporaries)
        fail(str(e), 1)
    path = None
    try:
        # each written and synced before any is renamed (temporaries are in the order of outputs)
        for (_, path, kind), t in zip(outputs, temporaries):
            if kind == "npz":
                # made in memory, then written: np.savez on the file itself left its ZipFile open
                # when a write failed (a full disk), and its clean-up printed a traceback after
                # our one line (until 2026-12-07)
                arrays = io.BytesIO()
                np.savez(arrays, **npz_arrays(net, np))  # a file object: no ".npz" appended to the name
                t.file.write(arrays.getbuffer())
                del arrays
            else:
                t.file.write(onnx_model(net, a.checkpoint))
            t.seal()
        # each output looked at again before any is put in place (and install looks again)
        for t in temporaries:
            t.check_still_ours()
        for t in temporaries:
            path = t.path
            t.install()  # in place: t.installed, and abandon leaves it
    except nn_outputs.Changed as e:  # the user's file kept; the work is lost
        done = nn_outputs.written(temporaries)
        nn_outputs.abandon_all(temporaries)
        fail(f"{e}" + (f"; wrote {', '.join(done)}" if done else ""), 1)
    except OSError as e:
        done = nn_outputs.written(temporaries)
        nn_outputs.abandon_all(temporaries)
        fail(f"{path}: write failed: {e.strerror or e}" + (f"; wrote {', '.join(done)}" if done else ""), 1)
    desc = network_text(net) + f" {net['activation']}, {net['output']} output"
    for (_, path, kind) in outputs:
        # the npz's forward takes flat rows; the ONNX graph of a convolutional network, [N, C, H, W]
        shape = input_shape(net) if kind == "onnx" else [int(np.prod(input_shape(net)))]
        through = f" (through the symbolic link, to {os.path.realpath(path)})" if os.path.islink(path) else ""
        print(f"{PROG}: wrote {path}{through} (network {desc}; input float32 [N, {', '.join(map(str, shape))}] = "
              "uint8 pixels * float32(1/255), row-major)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
