"""Ready-made models: LeNet-5, a small VGG for 32x32 inputs, and VGG-16 (torchvision's layout
and parameter names, so its state dict keys match ``torchvision.models.vgg16``)."""

from . import nn

VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG_SMALL_CONFIG = [16, 16, "M", 32, 32, "M", 64, 64, "M"]


def lenet5(num_classes=10, in_channels=1):
    """LeNet-5 with ReLU and max pooling, for 1x32x32 inputs (MNIST padded by 2, digits upsampled)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def make_vgg_features(config, in_channels=3):
    layers = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` -> flatten -> ``classifier``, as torchvision's VGG for 224x224 inputs (whose
    adaptive 7x7 average pooling is the identity there, so it is left out)."""

    def __init__(self, features, classifier):
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))

    def backward(self, grad_output, need_input_grad=True):
        g = self.classifier.backward(grad_output)
        return self.features.backward(self.flatten.backward(g), need_input_grad=need_input_grad)

    def output_shape(self, input_shape):
        return self.classifier.output_shape(self.flatten.output_shape(self.features.output_shape(input_shape)))


def vgg16(num_classes=1000, dropout=0.5):
    """VGG-16 (configuration D) for 3x224x224 inputs: 138,357,544 parameters."""
    classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )
    return VGG(make_vgg_features(VGG16_CONFIG), classifier)


def vgg_small(num_classes=10, in_channels=1, dropout=0.5):
    """A VGG-style CNN for 32x32 inputs: three blocks of 3x3 convolutions (16, 32, 64 channels)."""
    classifier = nn.Sequential(
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(True), nn.Dropout(dropout), nn.Linear(128, num_classes),
    )
    return VGG(make_vgg_features(VGG_SMALL_CONFIG, in_channels), classifier)
