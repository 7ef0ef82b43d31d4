"""Module: the base of every layer, shaped like ``torch.nn.Module`` but with an explicit
backward pass instead of autograd."""

from collections import OrderedDict, namedtuple

import numpy as np

from .parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _addindent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _as_array(value):
    if isinstance(value, Parameter):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor, without importing torch
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Module:
    """Base class of layers and models.

    A subclass assigns its parameters (:class:`Parameter`) and sub-modules as attributes and
    implements ``forward(x)``, which keeps what the gradient needs, and
    ``backward(grad_output, need_input_grad=True)``, which accumulates its parameters' gradients
    into ``.grad`` and returns the gradient with respect to ``x`` (``None`` when
    ``need_input_grad`` is false and skipping it saves work). ``output_shape(input_shape)``
    gives the output shape without computing anything (used by :func:`convforge.summary`).
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        if isinstance(value, (Parameter, Module)):
            if params is None:
                raise AttributeError("cannot assign parameters or modules before Module.__init__() call")
            params.pop(name, None)
            modules.pop(name, None)
            self.__dict__.pop(name, None)
            (params if isinstance(value, Parameter) else modules)[name] = value
            return
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:  # as torch: a buffer takes an array or None
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' (ndarray or None expected)")
            buffers[name] = value
            return
        for registry, kind in ((params, "Parameter"), (modules, "Module")):
            if registry is not None and name in registry:
                if value is not None:  # as torch: a registered name takes its own kind or None
                    raise TypeError(f"cannot assign {type(value).__name__} as {kind.lower()} '{name}' "
                                    f"({kind} or None expected)")
                registry[name] = None
                return
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        if "_buffers" in d and name in d["_buffers"]:
            return d["_buffers"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers.discard(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param: expected a Parameter or None, got {type(param).__name__}")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A state array that is not a parameter (BatchNorm's running statistics): saved in the
        state dict when ``persistent``, converted by :meth:`to` when floating-point, never trained."""
        if tensor is not None and not isinstance(tensor, np.ndarray):
            raise TypeError(f"tensor: expected a NumPy array or None, got {type(tensor).__name__}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module: expected a Module or None, got {type(module).__name__}")
        self._modules[str(name)] = module

    register_module = add_module

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self.named_children():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), buf

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn):
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and state
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"mode: expected a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad[...] = 0

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An ordered dict of parameter and persistent buffer name -> array (live views, as torch
        returns; per module its parameters, then its buffers, in torch's order)."""
        destination = OrderedDict() if destination is None else destination
        for name, module in self.named_modules(prefix.rstrip(".")):
            for pname, param in module._parameters.items():
                if param is not None:
                    destination[f"{name}.{pname}" if name else pname] = param if keep_vars else param.data
            for bname, buf in module._buffers.items():
                if buf is not None and bname not in module._non_persistent_buffers:
                    destination[f"{name}.{bname}" if name else bname] = buf
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into this module's parameters and buffers (in place, so optimisers keep
        working). Shapes must match; values are cast to each entry's dtype. Values may be NumPy
        arrays or CPU torch tensors (``model.load_state_dict(torch_model.state_dict())``)."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append(f"missing keys {missing}")
            if unexpected:
                errors.append(f"unexpected keys {unexpected}")
        for key, param in own.items():
            if key not in state_dict:
                continue
            value = _as_array(state_dict[key])
            if value.shape != param.shape:
                errors.append(f"{key}: expected shape {param.shape}, got {value.shape}")
            elif value.dtype.kind not in "fiub":
                errors.append(f"{key}: expected a numeric array, got dtype {value.dtype}")
        if errors:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(errors))
        for key, param in own.items():
            if key in state_dict:
                np.copyto(param.data if isinstance(param, Parameter) else param, _as_array(state_dict[key]),
                          casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    def to(self, dtype):
        """Convert every parameter and floating-point buffer to ``dtype`` (float32 or float64);
        gradients are dropped. Integer buffers (``num_batches_tracked``) stay as they are."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"dtype: expected a floating-point dtype, got {dtype}")
        for param in self.parameters():
            if param.data.dtype != dtype:
                param.data = param.data.astype(dtype)
                param.grad = None
        for module in self.modules():
            for name, buf in module._buffers.items():
                if buf is not None and buf.dtype.kind == "f" and buf.dtype != dtype:
                    module._buffers[name] = buf.astype(dtype)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ------------------------------------------------------------------ computation
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def backward(self, grad_output, need_input_grad=True):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"backward\" function")

    def output_shape(self, input_shape):
        """The output shape for an input of ``input_shape`` (batch included). This default runs
        ``forward`` on zeros; layers override it to avoid the computation."""
        dtype = next(iter(self.parameters()), None)
        dtype = np.float32 if dtype is None else dtype.dtype
        was_training = self.training
        self.eval()
        try:
            return tuple(np.shape(self.forward(np.zeros(input_shape, dtype))))
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, module in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(module), 2))
        if not self._modules:
            return f"{self._get_name()}({self.extra_repr()})"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules) | set(self._buffers))
