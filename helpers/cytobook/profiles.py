"""The three run profiles: ``smoke`` for tests, ``demo`` for a laptop, ``full`` for the reports.

A notebook receives only a profile name; everything that depends on the
compute budget (how much data is generated, image sizes, epochs, batch sizes,
whether ImageNet weights are mandatory) is derived here, so that the three
profiles differ in one place and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class CnmcSpec:
    """Size of a generated C-NMC 2019 data set (the official tree, scaled down).

    Attributes
    ----------
    image_size
        Side of the square images in pixels (450 in the real release).
    subjects_per_fold
        ``(ALL subjects, HEM subjects)`` in each of the three training folds.
    cells_per_subject
        Inclusive range ``(low, high)`` of images drawn for each subject.
    prelim_subjects, final_subjects
        ``(ALL, HEM)`` subjects in the preliminary (labelled) and final
        (unlabelled) test sets; they never appear in the training folds.
    """

    image_size: int = 450
    subjects_per_fold: tuple[int, int] = (16, 9)
    cells_per_subject: tuple[int, int] = (110, 170)
    prelim_subjects: tuple[int, int] = (9, 4)
    final_subjects: tuple[int, int] = (9, 9)


@dataclass(frozen=True)
class DlmiSpec:
    """Size of a generated DLMI 2023 lymphocytosis data set (the challenge layout).

    Attributes
    ----------
    train_patients
        ``(malignant, reactive)`` labelled patients (113 and 50 in the real
        release, i.e. about 30 % reactive).
    test_patients
        Unlabelled test patients (``LABEL`` -1; 42 in the real release).
    images_per_patient
        Inclusive range ``(low, high)`` of the bag size, drawn per patient.
    image_size
        Side of the square JPEG images in pixels (224 in the real release).
    """

    train_patients: tuple[int, int] = (113, 50)
    test_patients: int = 42
    images_per_patient: tuple[int, int] = (20, 120)
    image_size: int = 224


@dataclass(frozen=True)
class WbcSpec:
    """Size of the generated white-cell data of report 3's chapter, in every layout it reads.

    Attributes
    ----------
    image_size
        Side of the square white-cell images (575 in the course copy of
        Raabin-WBC; PBC's are about 360, Zheng's 120 and 300).
    train_per_class, val_per_class
        Images per class of ``WBC_100/train`` and ``WBC_100/val`` (the course
        copy: 8447 and 1728 over five classes, not balanced; the generator
        balances them, *our choice*). The other layouts take as many: Raabin's
        ``Train/`` and each test folder, PBC's folders, each Zheng data set.
    mask_share
        Share of the training images with a mask (about 10 % in the course
        copy); every fraction ``WBC_<n>`` keeps at least one mask per class.
    cam16_size, cam16_images
        Side of the CAMELYON16 patches (384) and images per split
        ``(train, val, test)``: 757, 108 and 216 in the course copy, half tumour.
    prcc_size, prcc_tiles
        Side and number of the unlabelled pRCC tiles (2000 px, 1491 tiles).
    """

    image_size: int = 575
    train_per_class: int = 1690
    val_per_class: int = 346
    mask_share: float = 0.1
    cam16_size: int = 384
    cam16_images: tuple[int, int, int] = (757, 108, 216)
    prcc_size: int = 2000
    prcc_tiles: int = 1491


@dataclass(frozen=True)
class Hep2Spec:
    """Size of the generated HEp-2 data of report 5's chapter, in every layout it reads.

    Attributes
    ----------
    cell_size
        Side of the single-cell images of the I3A layout (78, as the sample
        of the ICPR 2014 cells); MIVIA's cells are cropped around their
        nucleus, about this size, each its own width and height.
    i3a_cells
        Cells in ``(training, validation, test)`` of the I3A layout, over the
        six classes in the proportions of the ICPR 2014 task-1 release
        (13,596 cells, Golgi the rarest at 5 %), at least one per class.
    mivia_cells
        Cells in ``(training, test)`` of the MIVIA layout (721 and 734 in
        ICPR 2012), spread evenly over its six classes.
    field_size, nucleus_radius
        Side of the field images in pixels and median nucleus radius (the
        report's nuclei are about 60 px across; its field size is not given,
        1024 is *our choice*). A field holds about ``(field_size / (3.2 *
        nucleus_radius))**2`` cells.
    patterns_per_class
        Inclusive range of fields per class of the 14 ``patterns`` (four to five in the report).
    annot_per_class
        Inclusive range of fields per class of the 47 ``HEP Annot`` classes
        (one to seventy in the report's Figure 1; drawn skewed towards few).
    """

    cell_size: int = 78
    i3a_cells: tuple[int, int, int] = (8701, 2175, 2720)
    mivia_cells: tuple[int, int] = (721, 734)
    field_size: int = 1024
    nucleus_radius: float = 30.0
    patterns_per_class: tuple[int, int] = (4, 5)
    annot_per_class: tuple[int, int] = (1, 70)


@dataclass(frozen=True)
class Hep2ModelSpec:
    """Report 5's VGG16 cell classifiers (2.3-2.4 of the report) and how they are trained here.

    Attributes
    ----------
    image_size
        Side of the cells the network sees (96 in the report: "a size that
        worked best with VGG's convolutional layers").
    cut_at
        VGG16 layer where the base ends; ``None``: the whole convolutional base
        (the report's; its flattened output at 96 px is the 4608-d vector of 3.1).
    dense, dropout
        The head: "two Dense layers with ReLU activation functions and a
        dropout layer"; the units are not given (256 each, *our choice*),
        the dropout is 0.5 (its section 2.3).
    epochs, patience, batch_size, learning_rate
        The head's training on the frozen base's features: not given by the
        report; Adam, early stopping on the validation loss (*our choice*).
    stand_in_epochs, stand_in_learning_rate
        Without ImageNet weights, the base is first trained from random
        weights on the I3A training cells, with random flips and rotations,
        for this many epochs of Adam at this rate (0: ImageNet weights required).
    cells_per_field
        At most this many cells of each field image are kept (``None``: all).
    real_cells_per_class
        At most this many real I3A cells of each class and split (``None``: all).
    """

    image_size: int = 96
    cut_at: str | None = None
    dense: tuple[int, ...] = (256, 256)
    dropout: float = 0.5
    epochs: int = 50
    patience: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    stand_in_epochs: int = 0
    stand_in_learning_rate: float = 3e-4
    cells_per_field: int | None = None
    real_cells_per_class: int | None = None


@dataclass(frozen=True)
class UnetSpec:
    """Training settings of report 3's multitask UNet (3.1 of the report).

    Attributes
    ----------
    image_size
        Side of the random crop the model sees (384 in the report).
    width, depth, embedding
        Channels of the first level (64, UNet's; *our choice*, the figure's
        numbers did not survive), poolings before the bottleneck (4: 24×24 at
        384) and the embedding's length (512).
    epochs, step_size, gamma
        Adam for 32 epochs, the learning rate multiplied by ``gamma`` every
        ``step_size`` = 12 epochs (the report gives the step, not the factor:
        0.1, *our choice*, PyTorch's usual).
    learning_rate, clipnorm
        Adam's rate (not given: its default 1e-3) and the gradient clipping
        the report uses "to stabilize the training" (not given: norm 1.0).
    batch_size
        Not given: 8 (*our choice*, for 384 px crops in a GPU's memory).
    lambda_ce, lambda_dice
        Weights of the cross-entropy and Dice terms (2.0 and 1.0).
    fraction_batches_per_epoch
        Batches in an epoch of the white-cell models of Table 2 (notebook
        22). 0 in ``full``: an epoch is one pass over the fraction, as in the
        report. The small profiles' ``WBC_1`` holds one image a class, which one
        batch an epoch would leave untrained: there every fraction trains the
        same number of steps, its images repeated or not all seen each epoch
        (:class:`cytobook.models.unet.MultitaskBatches`).
    """

    image_size: int = 384
    width: int = 64
    depth: int = 4
    embedding: int = 512
    epochs: int = 32
    step_size: int = 12
    gamma: float = 0.1
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    batch_size: int = 8
    lambda_ce: float = 2.0
    lambda_dice: float = 1.0
    fraction_batches_per_epoch: int = 0


@dataclass(frozen=True)
class MilSpec:
    """Training settings of the lymphocytosis multi-instance models (report 4).

    Attributes
    ----------
    image_size
        Side of the images fed to the image expert's backbone (the JPEGs are
        resized; 224 in the report).
    epochs
        Upper bound on training epochs; early stopping usually ends sooner.
    bags_per_step
        Patients per optimiser step (the report's ``bs``, which it reaches by
        accumulating the losses of single bags; here one batch of padded bags).
    learning_rate
        AdamW learning rate (1e-3 in the report; 3e-3 in ``demo``, *our
        choice*, so that the cross-validation ends in fewer epochs on a CPU).
    lr_patience, stop_patience
        Epochs without validation improvement before the learning rate is
        divided by ten, and before training stops (5 and 10 in the report).
    cv_folds
        Folds of the stratified cross-validation used for model selection.
    max_instances
        Largest bag fed to a model; larger bags are subsampled at random each
        time they are drawn (a bound on memory, not part of the method).
    encoder_width
        Channels of the first stage of the ResNet-18-like image encoder (64 in
        ResNet-18; narrower to train on a CPU).
    encoder_image_size, encoder_instances, encoder_epochs
        Image side (for the ResNet-18 and the ViT, trained on the images),
        bag slots and epoch bound (for those and the backbone's tuned last
        stage, which run at every step): the same as ``image_size``,
        ``max_instances`` and ``epochs`` in ``full``; smaller in ``demo``,
        where these models would otherwise take most of the chapter's time
        on a CPU.
    vit
        ``(dim, depth, heads)`` of the ViT encoder ((384, 12, 6) is ViT-Small).
    vit_patch
        Patch side of the ViT in pixels (16 in ViT-Small/16).
    lora_rank
        Rank of the LoRA adapters of the ViT.
    backbone
        The pretrained backbone (a key of :data:`cytobook.weights.ARCHITECTURES`
        and of :data:`cytobook.models.mil.LAST_STAGE_START`) whose frozen
        features feed the image expert, and whose last stage is tuned: the
        report's ConvNeXt-Tiny in ``full``; MobileNetV2 in ``smoke`` and
        ``demo`` (*our choice*: ConvNeXt-Tiny takes 0.3 s per 224 px image on
        two CPU cores, MobileNetV2 a fiftieth of that, and its ImageNet file is
        the one the tests can place offline).
    """

    image_size: int = 224
    epochs: int = 100
    bags_per_step: int = 8
    learning_rate: float = 1e-3
    lr_patience: int = 5
    stop_patience: int = 10
    cv_folds: int = 5
    max_instances: int = 128
    encoder_width: int = 64
    encoder_image_size: int = 224
    encoder_instances: int = 128
    encoder_epochs: int = 100
    vit: tuple[int, int, int] = (384, 12, 6)
    vit_patch: int = 16
    lora_rank: int = 8
    backbone: str = "convnext_tiny"


@dataclass(frozen=True)
class BaggingSpec:
    """Settings of report 2's Inception-ResNet-V2 bagging models (Liu & Long, 2.2 and 2.5).

    Attributes
    ----------
    image_size
        Side of the square input: 299 in the report (Inception-ResNet-V2's
        ImageNet size); smaller in ``smoke`` and ``demo``, never below the 75
        px the architecture accepts.
    epochs, combined_epochs
        At most 50 epochs for each stage (the report): stage 1 (models A and
        B) and stage 2 (the combined model, trained on cached features, so
        cheap in every profile).
    patience, reduce_lr_patience
        Early stop after 12 epochs without a better validation score (best
        weights kept), learning rate x 0.1 after 6 (the report).
    monitor
        The validation score watched: the report monitors the "validation
        error", which we read as the error rate, so ``"val_accuracy"``
        (*our reading*; ``"val_loss"`` is the other). Stage 2's training loss
        weights ALL 2.5 times, its validation loss does not: watched, it kept
        the first epoch of the report split's combined model in run
        20261204-180400-demo, which called 87 % of the test cells ALL (HEM
        recall 0.21).
    batch_size
        32 (*our choice*: the report does not give it; Keras's default).
    learning_rate
        RMSprop "with default settings" (the report): Keras's 1e-3, from
        ImageNet weights. ``smoke`` and ``demo`` usually start from random
        weights, where 1e-3 does not learn in one epoch: 1e-4 (*our choice*,
        measured; see the profiles).
    """

    image_size: int = 299
    epochs: int = 50
    combined_epochs: int = 50
    patience: int | None = 12
    reduce_lr_patience: int | None = 6
    monitor: str = "val_accuracy"
    batch_size: int = 32
    learning_rate: float = 1e-3


@dataclass(frozen=True)
class Profile:
    """Everything a notebook derives from its ``profile`` parameter.

    Attributes
    ----------
    name
        ``"smoke"``, ``"demo"`` or ``"full"``.
    purpose
        One line shown in each notebook's configuration printout.
    cnmc
        Size of the generated C-NMC data (ignored when real data is given).
    image_size
        Side of the square model input for the C-NMC models (300 in report 1).
    transfer_image_size
        Largest input side of each transfer architecture, where it must be
        below the run's images (:func:`cytobook.models.cnmc.input_size`).
    epochs, batch_size
        Training length and batch size of the C-NMC models (feature extraction
        and models trained from scratch).
    fine_tune_epochs
        Epochs of each fine-tuning stage, after feature extraction.
    patience
        Early stopping on the validation loss, or ``None`` to train every epoch.
    imagenet_required
        If true, a missing ImageNet weight file is an error; otherwise the
        notebook says loudly that it starts from random weights (see
        ``stand_in_epochs``).
    stand_in_epochs, stand_in_epochs_by_arch
        Without ImageNet weights (no file and no network; never in ``full``),
        a transfer base is first trained from random weights on the training
        images for this many epochs, standing in for ImageNet pretraining
        (:func:`cytobook.models.transfer.stand_in_base`); an architecture
        listed in ``stand_in_epochs_by_arch`` trains that many instead
        (:meth:`stand_in_epochs_for`).
    bagging
        Settings of report 2's bagging models.
    dlmi, mil
        Size of the generated lymphocytosis data and the settings of the
        multi-instance models trained on it (report 4).
    wbc, unet
        Size of the generated white-cell, tissue and kidney images and the
        settings of the multitask UNet trained on them (report 3).
    hep2
        Size of the generated HEp-2 cells and fields (report 5).
    """

    name: str
    purpose: str
    cnmc: CnmcSpec = field(default_factory=CnmcSpec)
    image_size: int = 300
    transfer_image_size: dict[str, int] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 32
    fine_tune_epochs: int = 20
    patience: int | None = 10
    imagenet_required: bool = True
    stand_in_epochs: int = 0
    stand_in_epochs_by_arch: dict[str, int] = field(default_factory=dict)
    bagging: BaggingSpec = field(default_factory=BaggingSpec)
    dlmi: DlmiSpec = field(default_factory=DlmiSpec)
    mil: MilSpec = field(default_factory=MilSpec)
    wbc: WbcSpec = field(default_factory=WbcSpec)
    unet: UnetSpec = field(default_factory=UnetSpec)
    hep2: Hep2Spec = field(default_factory=Hep2Spec)
    hep2_model: Hep2ModelSpec = field(default_factory=Hep2ModelSpec)

    def stand_in_epochs_for(self, arch: str) -> int:
        """Epochs of ``arch``'s stand-in base: ``stand_in_epochs_by_arch[arch]`` where set, else ``stand_in_epochs``."""
        return self.stand_in_epochs_by_arch.get(arch, self.stand_in_epochs)

    def transfer_settings(self, arch: str, size: int) -> str:
        """One line of the settings a transfer notebook trains ``arch`` with, at input side ``size``."""
        return (f"input {size} px (prepared at {self.image_size} px), batch {self.batch_size}, feature extraction up to "
                f"{self.epochs} epochs, fine-tuning up to {self.fine_tune_epochs}, patience {self.patience}; "
                f"without ImageNet weights, a stand-in base trains {self.stand_in_epochs_for(arch)} epochs first")


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        purpose="pipeline test: tiny generated data, tiny images, one epoch",
        cnmc=CnmcSpec(
            image_size=96,
            subjects_per_fold=(2, 2),
            cells_per_subject=(6, 8),
            prelim_subjects=(1, 1),
            final_subjects=(1, 1),
        ),
        image_size=64,
        transfer_image_size={"vgg16": 32, "resnet50": 32, "mobilenet_v2": 32},
        epochs=1,
        batch_size=16,
        fine_tune_epochs=1,
        patience=None,
        imagenet_required=False,
        stand_in_epochs=1,
        bagging=BaggingSpec(image_size=75, epochs=1, combined_epochs=1, batch_size=16, learning_rate=1e-4),
        dlmi=DlmiSpec(train_patients=(6, 4), test_patients=3, images_per_patient=(3, 6)),
        mil=MilSpec(image_size=32, epochs=1, bags_per_step=4, cv_folds=2, max_instances=8, encoder_width=8,
                    encoder_image_size=32, encoder_instances=8, encoder_epochs=1, vit=(32, 2, 2), lora_rank=2,
                    backbone="mobilenet_v2"),
        wbc=WbcSpec(image_size=72, train_per_class=10, val_per_class=4, cam16_size=64, cam16_images=(12, 4, 6),
                    prcc_size=96, prcc_tiles=6),
        unet=UnetSpec(image_size=32, width=4, depth=2, embedding=8, epochs=1, step_size=1, batch_size=8,
                      fraction_batches_per_epoch=2),
        # 61 fields of 128 px (one a class of each collection) and 120 cells (96 I3A, 24 MIVIA): ~1.5 s to write.
        hep2=Hep2Spec(i3a_cells=(48, 24, 24), mivia_cells=(12, 12), field_size=128, nucleus_radius=9.0,
                      patterns_per_class=(1, 1), annot_per_class=(1, 1)),
        hep2_model=Hep2ModelSpec(image_size=32, cut_at="block2_pool", dense=(32, 32), epochs=2, patience=2,
                                 batch_size=16, stand_in_epochs=1, cells_per_field=20, real_cells_per_class=12),
    ),
    "demo": Profile(
        name="demo",
        purpose="laptop demonstration: generated data, small images, real learning curves in minutes",
        # 60 training subjects of 15-22 cells: with 30 of 30-45 (as many images), chance differences between
        # a handful of subjects per class let the subject-level split's models learn subjects, not cells.
        # With 12-18 cells the run took as long (its cost is per model and per epoch, not per cell) and three of
        # the scratch CNN and VGG16 models predicted one class (run 20261203-194858-demo).
        cnmc=CnmcSpec(
            image_size=160,
            subjects_per_fold=(12, 8),
            cells_per_subject=(15, 22),
            prelim_subjects=(6, 4),
            final_subjects=(3, 3),
        ),
        image_size=64,
        # Without ImageNet weights a base is trained from random weights first (stand_in_epochs): an epoch of
        # VGG16 costs ~10 s at 32 px, ~22 at 48 and ~55 at 64. At 32 px it sees too little of a cell (test AUC
        # ~0.57 on the demo's 60 subjects); ResNet50 at 32 px learnt the cells less well than at 64 (test AUC
        # ~0.67 against ~0.73) and takes 48 px, for time (test AUCs 0.78-0.81 on generator v4, run
        # 20261203-225748-demo); MobileNetV2 keeps 64 px (0.53 at 32).
        transfer_image_size={"vgg16": 48, "resnet50": 48},
        epochs=20,  # the scratch CNN's validation loss plateaus ~10 epochs before it falls
        batch_size=16,
        fine_tune_epochs=1,  # fine-tuning whole bases costs ~20-35 s an epoch on 2 cores
        patience=12,  # longer than that plateau: with 8, a scratch variant stopped on it and predicted one class
        imagenet_required=False,
        # Trained end to end from random weights, ResNet50 reaches a test AUC of ~0.75-0.8 in 4 epochs. VGG16, without
        # batch normalisation, learns slowest: after 4 epochs its subject-level model predicted HEM for 84 % of the
        # cells (test AUC 0.62, run 20261203-225748-demo), after 8 its AUC was 0.74 (balanced accuracy 0.69), at ~18 s
        # more an epoch and split. One stand-in now serves both splits, trained on the ~60 % of the training images
        # that both splits train on (results.stand_in_cells): half again as many epochs, at half the cost of two.
        stand_in_epochs=6,
        stand_in_epochs_by_arch={"vgg16": 12},
        # Inception-ResNet-V2 at its smallest input costs ~40 ms a cell per epoch to train inside the notebook on 2
        # cores, and six members are trained: one epoch each. From random weights, RMSprop at its default 1e-3 left
        # the members guessing (validation AUC ~0.53-0.79, most predicting ALL for nearly every cell; run
        # 20261203-234633-demo); at 1e-4 a member of the report's split reached a validation AUC of 0.84 and a test
        # weighted F1 of 0.79 in one epoch (batch 16: 0.80 and 0.72; Adam 1e-4: 0.83 and 0.66). Stage 2 learns
        # from cached features at ~1 s an epoch, for the report's 50 epochs at most.
        bagging=BaggingSpec(image_size=75, epochs=1, combined_epochs=50, batch_size=32, learning_rate=1e-4),
        dlmi=DlmiSpec(train_patients=(84, 36), test_patients=24, images_per_patient=(8, 20)),
        # Each of the chapter's trainable models runs 5 folds: few short epochs, small bags and a narrow encoder.
        mil=MilSpec(image_size=64, epochs=40, bags_per_step=8, learning_rate=3e-3, max_instances=20,
                    encoder_width=16, encoder_image_size=32, encoder_instances=4, encoder_epochs=4,
                    vit=(96, 4, 4), lora_rank=4, backbone="mobilenet_v2"),
        # WBC_100 of 300 images makes WBC_1 one image per class, WBC_10 six.
        wbc=WbcSpec(image_size=112, train_per_class=60, val_per_class=40, cam16_size=96, cam16_images=(160, 40, 80),
                    prcc_size=256, prcc_tiles=120),
        # 80 px crops of the 112 px cells keep the report's crop-to-image ratio (384 of 575). A UNet of width 8 and
        # depth 3, 8 epochs: at batch 16 and Adam 1e-3 falling after 3 epochs, 36 pRCC tiles gave 24 steps and a
        # reconstruction worse than each tile's mean colour (held-out MSE 0.108 against 0.039); 108 tiles at batch
        # 8 and 3e-3 falling after 6 reached 0.021, and CAMELYON16 test accuracy 0.89 (0.85 before), ~25 s a variant.
        # Table 2's models take 10 batches an epoch whatever the fraction: 80 steps, ~7 s a model (plus ~4 s to build
        # each loss's training step once). With one pass an epoch, WBC_1 (one image a class) took 8 steps, and its
        # scratch models predicted 2-4 classes; with 6 batches an epoch, some predicted four classes of five.
        unet=UnetSpec(image_size=80, width=8, depth=3, embedding=64, epochs=8, step_size=6, batch_size=8,
                      learning_rate=3e-3, fraction_batches_per_epoch=10),
        # A few hundred cells, Golgi the rarest (about 25 training cells); fields of ~50 cells.
        # The report's four to five fields a pattern: with two or three, one held-out field a class, the heads
        # learnt the training fields' exposure more than their patterns.
        hep2=Hep2Spec(i3a_cells=(480, 180, 180), mivia_cells=(120, 120), field_size=384, nucleus_radius=16.0,
                      patterns_per_class=(4, 5), annot_per_class=(2, 8)),
        # VGG16 from random weights (no ImageNet file offline), cut after block 3. On the 3,000 real I3A training cells
        # (2026-12-04, 2 cores): at 48 px and 6 epochs the base trained in ~3.5 min and the head reached a mean class
        # accuracy of 0.87 on the validation split; at 40 px and 5 epochs, in 99 s, 0.83 (0.80 with the base's own
        # head after 7 epochs at 48 px, without standardised features).
        hep2_model=Hep2ModelSpec(image_size=40, cut_at="block3_pool", epochs=40, patience=6, stand_in_epochs=5,
                                 cells_per_field=30),
    ),
    "full": Profile(
        name="full",
        purpose="the reports' own settings, meant for a GPU and the real data sets",
    ),
}

#: Environment variable that overrides every notebook's ``profile`` parameter
#: (the test suite sets it to ``smoke``); read by :func:`cytobook.notebook.start`.
PROFILE_ENV = "CYTOBOOK_PROFILE"


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Return the profile called ``name``, with optional field overrides.

    Raises
    ------
    ValueError
        If the name is not one of :data:`PROFILES`.
    """
    name = name or "demo"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    profile = PROFILES[name]
    return replace(profile, **overrides) if overrides else profile


#: Where each C-NMC training setting of the ``full`` profile comes from: report 1, or our choice where it is silent.
FULL_SETTING_SOURCES: dict[str, str] = {
    "image_size": "report 1, 3.2: 300x300 inputs (ResNet50 gets 224 px, see cytobook.models.cnmc.input_size)",
    "transfer_image_size": "report 1: the transfer models see the chapter's images",
    "batch_size": "report 1, 3.2: batch size 32",
    "epochs": "ours: the report gives no number of epochs",
    "fine_tune_epochs": "ours: the report gives no number of epochs",
    "patience": "ours: early stopping on the validation loss, best weights kept; the report does not say when it stopped",
    "imagenet_required": "report 1, 3.3: every transfer model starts from ImageNet",
    "stand_in_epochs": "not used: full requires ImageNet weights",
    "stand_in_epochs_by_arch": "not used: full requires ImageNet weights",
}


def settings_table(profile: Profile) -> "pd.DataFrame":
    """The C-NMC training settings of ``profile``, each with where its ``full`` value comes from.

    Learning rates and optimisers are notebook parameters, marked there as the
    report's or ours.
    """
    import pandas as pd

    rows = [{"setting": name, profile.name: getattr(profile, name), "full": getattr(PROFILES["full"], name),
             "source of the full value": source} for name, source in FULL_SETTING_SOURCES.items()]
    frame = pd.DataFrame(rows).set_index("setting")
    return frame if profile.name != "full" else frame.drop(columns=profile.name)
