#!/usr/bin/python3
"""The forward pass of an nntrain network exported with `scripts/export_model.py CK --npz M.npz`,
in NumPy alone (float32, as nntrain computes it):

    import numpy as np, model_numpy
    model = model_numpy.load("M.npz")
    probs = model_numpy.forward(model, model_numpy.pixels(images))   # images: uint8 [N, 28, 28]
    predicted = probs.argmax(axis=1)                                  # the class, as nneval picks it

Input: one row per sample, the uint8 pixels flattened row-major (C, H, W) and scaled as nntrain
scales them: float32(pixel) * float32(1/255) (the npz's `input_scale`), so 0..1.
Output: [N, classes] probabilities -- softmax of the last layer (loss softmax), or the sigmoid
of each output unit (loss mse; they need not sum to 1).
The .npz holds weight1, bias1, ..., weightK, biasK (float32 [in, out] and [out]: the dense
layers), widths, activation (sigmoid|relu|tanh, after every layer but the last), output
(softmax|sigmoid), input_scale, and format: "nntrain-export 1", or "nntrain-export 2" for a
convolutional network, which also holds image (c, h, w), convs (one row pool, k, channels, pad
per conv or pool, input first) and conv1_weight, conv1_bias, ... (float32 [k, k, in_c, out_c]
and [out_c]). A convolution (stride 1, zero padding pad) is followed by the activation, a pool
takes the maximum of each 2x2 window (an odd last row or column is dropped); the first dense
layer reads the last one's output channels last (H, W, C) after a convolution, as nntrain lays
it out. np.load needs no pickle.
"""
import numpy as np

ACTIVATIONS = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}
FORMATS = ("nntrain-export 1", "nntrain-export 2")
CHUNK = 512  # samples a convolution works on at once: bounds the memory of its windows


def load(path):
    with np.load(path, allow_pickle=False) as f:
        model = {name: f[name] for name in f.files}
    if str(model.get("format")) not in FORMATS:
        raise ValueError(f"{path}: not an nntrain export (format {model.get('format')!r}, expected one of {FORMATS})")
    return model


def pixels(images, scale=np.float32(1 / 255)):
    """uint8 images [N, ...] -> the float32 [N, width] rows nntrain feeds its first layer."""
    images = np.asarray(images, dtype=np.uint8)
    return images.reshape(len(images), -1).astype(np.float32) * np.float32(scale)


def conv2d(x, weight, bias, pad):
    """x [N, H, W, C] (channels last) -> [N, H + 2 pad - k + 1, W + 2 pad - k + 1, out_c]:
    a sum over the k x k taps of shifted images times that tap's [C, out_c] weights."""
    k = weight.shape[0]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = x.shape[1] - k + 1, x.shape[2] - k + 1
    y = np.broadcast_to(bias, (x.shape[0], oh, ow, len(bias))).copy()
    for i in range(k):
        for j in range(k):
            y += x[:, i:i + oh, j:j + ow, :] @ weight[i, j]
    return y


def maxpool2(x):
    """x [N, H, W, C] -> [N, H // 2, W // 2, C], the maximum of each 2x2 window."""
    n, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2, :].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def features(model, x):
    """The convolutions and pools on flat rows x: the rows the first dense layer reads."""
    c, h, w = (int(v) for v in model["image"])
    act = ACTIVATIONS[str(model["activation"])]
    x = x.reshape(len(x), c, h, w).transpose(0, 2, 3, 1)  # the data's (C, H, W), worked on channels last
    convolved, k = False, 0
    for pool, _, _, pad in model["convs"]:
        if pool:
            x = maxpool2(x)
            continue
        k += 1
        x = act(conv2d(x, model[f"conv{k}_weight"], model[f"conv{k}_bias"], int(pad)))
        convolved = True
    # nntrain flattens channels last after a convolution, in the data's (C, H, W) before any
    return (x if convolved else x.transpose(0, 3, 1, 2)).reshape(len(x), -1)


def forward(model, x):
    """x: float32 [N, C*H*W] (see pixels); returns float32 [N, classes] probabilities."""
    x = np.asarray(x, dtype=np.float32)
    if "convs" not in model:
        return forward_dense(model, x)
    with np.errstate(over="ignore"):
        parts = [forward_dense(model, features(model, x[i:i + CHUNK])) for i in range(0, len(x), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, int(model["widths"][-1])), dtype=np.float32)


def forward_dense(model, x):
    layers, act = len(model["widths"]) - 1, ACTIVATIONS[str(model["activation"])]
    with np.errstate(over="ignore"):  # exp(-z) = inf for very negative z: sigmoid 0, as it should
        for k in range(1, layers + 1):
            x = np.asarray(x, dtype=np.float32) @ model[f"weight{k}"] + model[f"bias{k}"]
            if k < layers:
                x = act(x)
        if str(model["output"]) == "sigmoid":
            return ACTIVATIONS["sigmoid"](x)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
