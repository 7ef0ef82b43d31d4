"""Sequential: a chain of modules, forward in order and backward in reverse."""

from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """``Sequential(m0, m1, ...)`` or ``Sequential(OrderedDict(name=module, ...))``, as torch.

    ``backward(grad_output, need_input_grad=True)`` runs each module's backward in reverse order;
    with ``need_input_grad=False`` the first module may skip its input gradient (a first
    convolution then computes only its weight and bias gradients)."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)

    def _layers(self):
        return [m for m in self._modules.values() if m is not None]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        modules = list(self._modules.values())
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(modules)}")
        return modules[index]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        for module in self._layers():
            input = module(input)
        return input

    def backward(self, grad_output, need_input_grad=True):
        layers = self._layers()
        for i in range(len(layers) - 1, -1, -1):
            grad_output = layers[i].backward(grad_output, need_input_grad=need_input_grad or i > 0)
        return grad_output

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for module in self._layers():
            shape = module.output_shape(shape)
        return shape
