"""_lib — liblongnet through ctypes: finding the library, the prototypes of
the calls this package makes, and turning a failing status into a Python
exception carrying lnet_last_error()'s message.

Nothing here knows NumPy or torch: the entry points (_numpy.py, torch.py)
hand in a data pointer, a dtype name, a shape and strides in elements.
"""
import atexit
import ctypes
import ctypes.util
import os
import threading

# ------------------------------------------------------------- the library


def _candidates():
    """Where liblongnet is looked for, in order: LONGNET_LIBRARY (a file),
    the libdir `make install` recorded beside this package, then the
    system's search (ld.so's cache, LD_LIBRARY_PATH)."""
    env = os.environ.get("LONGNET_LIBRARY")
    if env:
        return [env], True
    found = []
    try:
        from . import _paths  # written by `make install` (configure --enable-python)
        found.append(os.path.join(_paths.LIBDIR, "liblongnet.so.0"))
    except ImportError:
        pass
    found.append("liblongnet.so.0")
    name = ctypes.util.find_library("longnet")
    if name:
        found.append(name)
    return found, False


def _load():
    paths, explicit = _candidates()
    errors = []
    for path in paths:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    hint = ("LONGNET_LIBRARY names a file that does not load" if explicit else
            "install longnet (make install) or set LONGNET_LIBRARY to liblongnet.so")
    raise ImportError("longnet: cannot load liblongnet (%s): %s" % (hint, "; ".join(errors)))


lib = _load()

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_void_pp = ctypes.POINTER(ctypes.c_void_p)


class RunOptions(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("device", ctypes.c_char_p),
                ("kernel", ctypes.c_char_p), ("algorithm", ctypes.c_int)]


class PluginInfo(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char_p), ("name", ctypes.c_char_p),
                ("description", ctypes.c_char_p), ("abi_version", ctypes.c_uint32),
                ("loaded", ctypes.c_int), ("reason", ctypes.c_char_p),
                ("devices", ctypes.c_int)]


class DeviceInfo(ctypes.Structure):
    _fields_ = [("backend", ctypes.c_char_p), ("index", ctypes.c_int),
                ("name", ctypes.c_char_p), ("kind", ctypes.c_char_p),
                ("memory_bytes", ctypes.c_uint64), ("compute_units", ctypes.c_int),
                ("kernels", ctypes.c_char_p)]


def _proto(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_S = ctypes.c_int  # lnet_status
_P = ctypes.c_void_p
_proto("lnet_last_error", ctypes.c_char_p)
_proto("lnet_status_name", ctypes.c_char_p, _S)
_proto("lnet_version", ctypes.c_char_p)
_proto("lnet_tensor_wrap_strided", _S, _P, ctypes.c_int, ctypes.c_int, c_int64_p, c_int64_p,
       c_void_pp)
_proto("lnet_tensor_free", None, _P)
_proto("lnet_config_create", _S, c_void_pp)
_proto("lnet_config_free", None, _P)
_proto("lnet_config_add_level", _S, _P, ctypes.c_int64, ctypes.c_int64)
_proto("lnet_config_set_causal", _S, _P, ctypes.c_int)
_proto("lnet_config_set_scale", _S, _P, ctypes.c_double)
_proto("lnet_config_validate", _S, _P, ctypes.c_int64)
_proto("lnet_offsets_parse", _S, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int))
_proto("lnet_config_set_offsets", _S, _P, ctypes.c_int)
_proto("lnet_algorithm_parse", _S, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int))
_proto("lnet_context_create", _S, _P, c_void_pp)
_proto("lnet_context_free", None, _P)
_proto("lnet_context_plugin_count", ctypes.c_int, _P)
_proto("lnet_context_plugin", _S, _P, ctypes.c_int, ctypes.POINTER(PluginInfo))
_proto("lnet_context_device_count", ctypes.c_int, _P)
_proto("lnet_context_device", _S, _P, ctypes.c_int, ctypes.POINTER(DeviceInfo))
_proto("lnet_attention_forward", _S, _P, _P, _P, _P, _P, _P, _P, ctypes.POINTER(RunOptions))
_proto("lnet_attention_backward", _S, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P,
       ctypes.POINTER(RunOptions))

# ------------------------------------------------------------------ errors

_STATUS_NAMES = {}


class LongnetError(RuntimeError):
    """A liblongnet call failed. `status` is the lnet_status (negative),
    `status_name` its name ("LNET_ERR_INVALID"), the message is
    lnet_last_error()'s."""

    def __init__(self, status, message):
        self.status = status
        self.status_name = lib.lnet_status_name(status).decode()
        super().__init__(message)


class InvalidArgumentError(LongnetError, ValueError):
    """LNET_ERR_INVALID: a bad argument, shape or configuration."""


class DeviceError(LongnetError):
    """LNET_ERR_DEVICE: a device failed or does not exist."""


class UnsupportedError(LongnetError):
    """LNET_ERR_UNSUPPORTED: valid, but not supported here (a dtype no
    listed device runs, say)."""


_BY_STATUS = {-1: InvalidArgumentError, -6: DeviceError, -8: UnsupportedError}


def check(status):
    """Raises the exception for a failing status, with the library's message."""
    if status != 0:
        raise _BY_STATUS.get(status, LongnetError)(status, lib.lnet_last_error().decode(
            errors="replace"))


# ----------------------------------------------------------------- context

_context = None
_context_lock = threading.Lock()


def context():
    """The process's one context (plugins loaded once; calibrations of a
    device list cached there), made on first use, freed at exit."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = ctypes.c_void_p()
            check(lib.lnet_context_create(None, ctypes.byref(ctx)))
            _context = ctx
            atexit.register(_free_context)
        return _context


def _free_context():
    global _context
    with _context_lock:
        if _context is not None:
            lib.lnet_context_free(_context)
            _context = None


# ------------------------------------------------------------------ config


def _levels(values, what):
    """A level list as ints: a sequence of ints or "2048,4096"."""
    if isinstance(values, str):
        parts = [p.strip() for p in values.split(",")]
    elif isinstance(values, int):
        parts = [values]
    else:
        parts = list(values)
    out = []
    for p in parts:
        try:
            out.append(int(p))
        except (TypeError, ValueError):
            raise InvalidArgumentError(-1, "%s: '%s' is not an integer" % (what, p)) from None
    return out


class Config:
    """An lnet_config, freed when the `with` block ends."""

    def __init__(self, segments, dilations, causal, offsets, scale):
        self.handle = ctypes.c_void_p()
        check(lib.lnet_config_create(ctypes.byref(self.handle)))
        try:
            seg = _levels(segments, "segments")
            dil = _levels(dilations, "dilations")
            if len(seg) != len(dil):
                raise InvalidArgumentError(-1, "segments and dilations differ in length "
                                           "(%d segments, %d dilations)" % (len(seg), len(dil)))
            for w, r in zip(seg, dil):
                check(lib.lnet_config_add_level(self.handle, w, r))
            check(lib.lnet_config_set_causal(self.handle, 1 if causal else 0))
            if scale is not None:
                check(lib.lnet_config_set_scale(self.handle, float(scale)))
            mode = ctypes.c_int()
            check(lib.lnet_offsets_parse(str(offsets).encode(), ctypes.byref(mode)))
            check(lib.lnet_config_set_offsets(self.handle, mode.value))
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.handle:
            lib.lnet_config_free(self.handle)
            self.handle = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_options(device, kernel, algorithm):
    opts = RunOptions()
    opts.size = ctypes.sizeof(RunOptions)
    opts.device = None if device is None else str(device).encode()
    opts.kernel = None if kernel is None else str(kernel).encode()
    alg = ctypes.c_int()
    check(lib.lnet_algorithm_parse(str(algorithm).encode(), ctypes.byref(alg)))
    opts.algorithm = alg.value
    return opts


# ----------------------------------------------------------------- tensors

DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2}


class Tensors:
    """Borrowing lnet_tensor views of caller memory, all freed together when
    the `with` block ends (so that no failure path leaks one)."""

    def __init__(self):
        self.handles = []

    def wrap(self, pointer, dtype, shape, strides):
        """A view of `pointer`: `dtype` one of DTYPES, strides in elements
        (the library checks them: rank, non-negative, in memory)."""
        n = len(shape)
        shape_a = (ctypes.c_int64 * max(n, 1))(*shape)
        strides_a = (ctypes.c_int64 * max(n, 1))(*strides)
        t = ctypes.c_void_p()
        check(lib.lnet_tensor_wrap_strided(ctypes.c_void_p(pointer), DTYPES[dtype], n, shape_a,
                                           strides_a, ctypes.byref(t)))
        self.handles.append(t)
        return t

    def close(self):
        for t in self.handles:
            lib.lnet_tensor_free(t)
        self.handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def forward(cfg, q, k, v, out, lse, opts):
    check(lib.lnet_attention_forward(context(), cfg.handle, q, k, v, out, lse,
                                     ctypes.byref(opts)))


def backward(cfg, q, k, v, out, lse, dout, dq, dk, dv, opts):
    check(lib.lnet_attention_backward(context(), cfg.handle, q, k, v, out, lse, dout, dq, dk,
                                      dv, ctypes.byref(opts)))


# -------------------------------------------------------------------- info


def _s(b):
    return None if b is None else b.decode(errors="replace")


def info():
    """The plugins found (loaded or refused, and why) and the devices they
    offer, as `longnet info` lists them: a dict with "version", "plugins"
    and "devices" (each a list of dicts). A device's "spec" is what a
    device= argument takes ("cpu:0")."""
    ctx = context()
    plugins = []
    for i in range(lib.lnet_context_plugin_count(ctx)):
        p = PluginInfo()
        check(lib.lnet_context_plugin(ctx, i, ctypes.byref(p)))
        plugins.append({"path": _s(p.path), "name": _s(p.name),
                        "description": _s(p.description), "abi_version": p.abi_version,
                        "loaded": bool(p.loaded), "reason": _s(p.reason),
                        "devices": p.devices})
    devices = []
    for i in range(lib.lnet_context_device_count(ctx)):
        d = DeviceInfo()
        check(lib.lnet_context_device(ctx, i, ctypes.byref(d)))
        kernels = _s(d.kernels) or ""
        devices.append({"spec": "%s:%d" % (_s(d.backend), d.index), "backend": _s(d.backend),
                        "index": d.index, "name": _s(d.name), "kind": _s(d.kind),
                        "memory_bytes": d.memory_bytes, "compute_units": d.compute_units,
                        "kernels": [x for x in kernels.split(",") if x]})
    return {"version": lib.lnet_version().decode(), "plugins": plugins, "devices": devices}
