using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Calibrators;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.FastTree;
using Microsoft.ML.Trainers.LightGbm;

namespace RamPay.Fraud.Training;

/// <summary>Which ML.NET trainer.</summary>
public enum MlNetAlgorithm
{
    /// <summary>LightGBM's gradient-boosted trees (leaf-wise growth), through Microsoft.ML.LightGbm.</summary>
    LightGbm,
    /// <summary>ML.NET's own gradient-boosted trees (Microsoft.ML.FastTree).</summary>
    FastTree,
    /// <summary>L-BFGS logistic regression on features standardized by their training mean and deviation.</summary>
    Logistic,
}

public sealed record MlNetOptions
{
    /// <summary>Trees (boosting iterations) for LightGbm and FastTree.</summary>
    public int Trees { get; init; } = 100;
    /// <summary>Leaves per tree for LightGbm and FastTree.</summary>
    public int Leaves { get; init; } = 16;
    /// <summary>LightGbm only: no path longer than this (keeps a tree within the scorer's branch-free walk, depth ≤ 8).</summary>
    public int MaxDepth { get; init; } = 6;
    public double LearningRate { get; init; } = 0.1;
    public int MinRowsPerLeaf { get; init; } = 20;
    /// <summary>Logistic regression: L2 penalty (ML.NET's, on the summed loss).</summary>
    public float L2 { get; init; } = 1f;
    public int Seed { get; init; } = 1;

    public void Validate()
    {
        if (Trees is < 1 or > FraudModel.MaxTrees) throw new ArgumentException($"trees must be 1..{FraudModel.MaxTrees}");
        if (Leaves is < 2 or > 1024) throw new ArgumentException("leaves must be 2..1024");
        if (MaxDepth is < 1 or > 30) throw new ArgumentException("depth must be 1..30");
        if (!(LearningRate > 0 && LearningRate <= 1)) throw new ArgumentException("learning rate must be in (0, 1]");
        if (MinRowsPerLeaf < 1) throw new ArgumentException("rows per leaf must be at least 1");
        if (!(L2 >= 0)) throw new ArgumentException("the L2 penalty must not be negative");
    }
}

/// <summary>
/// A model trained by ML.NET, exported to our model file, with what is needed to compare the two: ML.NET's own
/// transformer and the rows as ML.NET sees them.
/// </summary>
public sealed class MlNetModel
{
    internal MlNetModel(FraudModel model, ITransformer transformer, MLContext context, double[]? mean, double[]? scale)
    {
        Model = model;
        Transformer = transformer;
        Context = context;
        _mean = mean;
        _scale = scale;
    }

    private readonly double[]? _mean, _scale;
    public FraudModel Model { get; }
    public ITransformer Transformer { get; }
    public MLContext Context { get; }

    /// <summary>ML.NET's own probabilities for the given rows (the same features, as ML.NET's float vectors).</summary>
    public float[] PredictWithMlNet(LabelledSet data, int[] rows)
    {
        var view = Context.Data.LoadFromEnumerable(MlNetTrainer.Rows(data, rows, _mean, _scale), MlNetTrainer.Schema(data.FeatureCount));
        var scored = Transformer.Transform(view);
        return [.. scored.GetColumn<float>("Probability")];
    }
}

/// <summary>
/// Trains with Microsoft.ML (LightGbm, FastTree, or L-BFGS logistic regression) on the rows of a
/// <see cref="LabelledSet"/> and exports the result to a <see cref="FraudModel"/>: the writer never runs ML.NET, it
/// scores the exported flat arrays with its own deterministic, allocation-free code.
/// <para>
/// Export, trees: ML.NET's ensemble gives raw = bias + Σ weightₜ·leafₜ and its Platt calibrator
/// p = 1 / (1 + exp(slope·raw + offset)), so our logit is −(slope·raw + offset): each leaf becomes −slope·weightₜ·leafₜ
/// and the base −(slope·bias + offset). ML.NET sends a row left when (float)x ≤ t for its float threshold t; our
/// scorer compares the double x, so each threshold is exported as the largest double that rounds to a float ≤ t
/// (<see cref="DoubleThreshold"/>): both then take the same path for every x, and the logits differ only by the order
/// and precision of the additions (float rounding). Logistic: ML.NET is fed z = (float)((x − mean)/deviation) and
/// our file stores mean and deviation beside the weights (folded with the calibrator's slope and offset likewise).
/// </para>
/// </summary>
public static class MlNetTrainer
{
    public sealed class Row
    {
        public bool Label { get; set; }
        public float[] Features { get; set; } = [];
    }

    /// <summary>The rows' schema: a feature vector of the data's width (not fixed at compile time: tests train on other widths).</summary>
    internal static SchemaDefinition Schema(int featureCount)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, featureCount);
        return schema;
    }

    internal static IEnumerable<Row> Rows(LabelledSet data, int[] rows, double[]? mean, double[]? scale)
    {
        int d = data.FeatureCount;
        foreach (int i in rows)
        {
            var x = data.Row(i);
            var f = new float[d];
            for (int j = 0; j < d; j++) f[j] = mean is null ? (float)x[j] : (float)((x[j] - mean[j]) / scale![j]);
            yield return new Row { Label = data.Label[i] == 1, Features = f };
        }
    }

    public static MlNetModel Train(MlNetAlgorithm algorithm, LabelledSet data, int[] rows, string version, string schemaId,
        MlNetOptions? options = null, IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        options ??= new MlNetOptions();
        options.Validate();
        int d = data.FeatureCount;
        if (rows.Length < 2) throw new ArgumentException("too few training rows");
        var ml = new MLContext(seed: options.Seed);
        var inv = CultureInfo.InvariantCulture;
        var meta = new List<KeyValuePair<string, string>>();
        double[]? mean = null, scale = null;
        if (algorithm == MlNetAlgorithm.Logistic) (mean, scale) = Standardization(data, rows);
        var view = ml.Data.LoadFromEnumerable(Rows(data, rows, mean, scale), Schema(d));
        FraudModel model;
        ITransformer transformer;
        switch (algorithm)
        {
            case MlNetAlgorithm.LightGbm:
            {
                var trainer = ml.BinaryClassification.Trainers.LightGbm(new LightGbmBinaryTrainer.Options
                {
                    NumberOfIterations = options.Trees,
                    NumberOfLeaves = options.Leaves,
                    MinimumExampleCountPerLeaf = options.MinRowsPerLeaf,
                    LearningRate = options.LearningRate,
                    NumberOfThreads = 1, // one thread: the same rows give the same model
                    Seed = options.Seed,
                    Booster = new GradientBooster.Options { MaximumTreeDepth = options.MaxDepth },
                });
                var fitted = trainer.Fit(view);
                transformer = fitted;
                var calibrated = fitted.Model;
                meta.Add(new("algorithm", "ML.NET LightGbm (Microsoft.ML.LightGbm 6.0.0), gradient-boosted trees, leaf-wise"));
                meta.Add(new("hyper_parameters", $"trees {options.Trees}, leaves {options.Leaves}, max depth {options.MaxDepth}, learning rate {options.LearningRate.ToString(inv)}, min rows per leaf {options.MinRowsPerLeaf}, seed {options.Seed}"));
                model = ExportTrees(calibrated.SubModel.TrainedTreeEnsemble, calibrated.Calibrator, version, schemaId, d, meta, metadata, rows.Length);
                break;
            }
            case MlNetAlgorithm.FastTree:
            {
                var trainer = ml.BinaryClassification.Trainers.FastTree(new FastTreeBinaryTrainer.Options
                {
                    NumberOfTrees = options.Trees,
                    NumberOfLeaves = options.Leaves,
                    MinimumExampleCountPerLeaf = options.MinRowsPerLeaf,
                    LearningRate = options.LearningRate,
                    NumberOfThreads = 1,
                });
                var fitted = trainer.Fit(view);
                transformer = fitted;
                var calibrated = fitted.Model;
                meta.Add(new("algorithm", "ML.NET FastTree (Microsoft.ML.FastTree 6.0.0), gradient-boosted trees"));
                meta.Add(new("hyper_parameters", $"trees {options.Trees}, leaves {options.Leaves}, learning rate {options.LearningRate.ToString(inv)}, min rows per leaf {options.MinRowsPerLeaf}, seed {options.Seed}"));
                model = ExportTrees(calibrated.SubModel.TrainedTreeEnsemble, calibrated.Calibrator, version, schemaId, d, meta, metadata, rows.Length);
                break;
            }
            case MlNetAlgorithm.Logistic:
            {
                var trainer = ml.BinaryClassification.Trainers.LbfgsLogisticRegression(new LbfgsLogisticRegressionBinaryTrainer.Options
                {
                    L2Regularization = options.L2,
                    L1Regularization = 0,
                    NumberOfThreads = 1,
                });
                var fitted = trainer.Fit(view);
                transformer = fitted;
                var calibrated = fitted.Model;
                var linear = calibrated.SubModel;
                var (slope, offset) = Platt(calibrated.Calibrator);
                var weights = new double[d];
                for (int j = 0; j < weights.Length; j++) weights[j] = -slope * linear.Weights[j];
                double bias = -(slope * linear.Bias + offset);
                meta.Add(new("algorithm", "ML.NET L-BFGS logistic regression (Microsoft.ML 6.0.0) on standardized features"));
                meta.Add(new("hyper_parameters", $"l2 {options.L2.ToString(inv)}, l1 0"));
                meta.Add(new("training_rows", rows.Length.ToString(inv)));
                if (metadata is not null) meta.AddRange(metadata);
                model = FraudModel.CreateLogistic(version, schemaId, bias, mean!, scale!, weights, meta);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(algorithm));
        }
        return new MlNetModel(model, transformer, ml, mean, scale);
    }

    private static (double[] Mean, double[] Scale) Standardization(LabelledSet data, int[] rows)
    {
        int d = data.FeatureCount;
        var mean = new double[d];
        var scale = new double[d];
        foreach (int i in rows)
        {
            var x = data.Row(i);
            for (int j = 0; j < d; j++) mean[j] += x[j];
        }
        for (int j = 0; j < d; j++) mean[j] /= rows.Length;
        foreach (int i in rows)
        {
            var x = data.Row(i);
            for (int j = 0; j < d; j++) scale[j] += (x[j] - mean[j]) * (x[j] - mean[j]);
        }
        for (int j = 0; j < d; j++)
        {
            double sd = Math.Sqrt(scale[j] / rows.Length);
            scale[j] = sd > 1e-12 ? sd : 1; // a constant feature: any scale; its weight is 0
        }
        return (mean, scale);
    }

    private static (double Slope, double Offset) Platt(ICalibrator calibrator) => calibrator switch
    {
        PlattCalibrator p => (p.Slope, p.Offset),
        _ => throw new NotSupportedException($"ML.NET calibrator {calibrator.GetType().Name}: only Platt's sigmoid maps onto the model file"),
    };

    private static FraudModel ExportTrees(RegressionTreeEnsemble ensemble, ICalibrator calibrator, string version, string schemaId, int featureCount,
        List<KeyValuePair<string, string>> meta, IEnumerable<KeyValuePair<string, string>>? metadata, int trainingRows)
    {
        var (slope, offset) = Platt(calibrator);
        var trees = new List<TreeNode[]>(ensemble.Trees.Count);
        int maxDepth = 0;
        for (int t = 0; t < ensemble.Trees.Count; t++)
        {
            var (nodes, depth) = ExportTree(ensemble.Trees[t], -slope * ensemble.TreeWeights[t]);
            trees.Add(nodes);
            maxDepth = Math.Max(maxDepth, depth);
        }
        var inv = CultureInfo.InvariantCulture;
        meta.Add(new("exported", $"{trees.Count} trees, deepest {maxDepth}, Platt slope {slope.ToString("R", inv)} offset {offset.ToString("R", inv)} folded into the leaves"));
        meta.Add(new("training_rows", trainingRows.ToString(inv)));
        if (metadata is not null) meta.AddRange(metadata);
        return FraudModel.CreateTrees(version, schemaId, featureCount, -(slope * ensemble.Bias + offset), trees, meta);
    }

    /// <summary>
    /// One ML.NET tree as our nodes, breadth first, so that a split's children sit at Left and Left + 1 after it. In
    /// ML.NET's arrays a child ≥ 0 is a split node and a child &lt; 0 is the leaf ~child; the left child is the ≤ side.
    /// </summary>
    private static (TreeNode[] Nodes, int Depth) ExportTree(RegressionTree tree, double leafFactor)
    {
        if (tree.NumberOfNodes == 0) return ([TreeNode.Leaf(leafFactor * tree.LeafValues[0])], 0);
        for (int n = 0; n < tree.NumberOfNodes; n++)
            if (tree.CategoricalSplitFlags.Count > n && tree.CategoricalSplitFlags[n])
                throw new NotSupportedException("ML.NET tree with a categorical split: the model file has numeric splits only");
        var order = new List<(int Ref, int Depth)> { (0, 0) }; // Ref ≥ 0: split node; < 0: leaf ~Ref
        var nodes = new List<TreeNode>();
        int depth = 0;
        for (int k = 0; k < order.Count; k++)
        {
            var (r, d) = order[k];
            depth = Math.Max(depth, d);
            if (r < 0)
            {
                nodes.Add(TreeNode.Leaf(leafFactor * tree.LeafValues[~r]));
                continue;
            }
            nodes.Add(TreeNode.Split(tree.NumericalSplitFeatureIndexes[r], DoubleThreshold(tree.NumericalSplitThresholds[r]), order.Count));
            order.Add((tree.LeftChild[r], d + 1));
            order.Add((tree.RightChild[r], d + 1));
        }
        return ([.. nodes], depth);
    }

    /// <summary>
    /// The largest double d such that (float)d ≤ t, so that "x ≤ d" on doubles is exactly ML.NET's "(float)x ≤ t".
    /// Round-to-nearest-even sends every double below the midpoint m of t and the next float up to t or below, and m
    /// itself to whichever of the two has an even significand: to t when t's is even (then d = m), else up (then d is
    /// the double just below m). m is exact in a double (a float significand plus one bit).
    /// </summary>
    public static double DoubleThreshold(float t)
    {
        if (float.IsNaN(t)) throw new InvalidDataException("ML.NET tree threshold is NaN");
        if (float.IsPositiveInfinity(t)) return double.MaxValue; // every finite x goes left (the file holds finite numbers only)
        double up = t == float.MaxValue ? Math.Pow(2, 128) : MathF.BitIncrement(t); // above MaxValue: where rounding overflows
        double m = ((double)t + up) / 2;
        bool tEven = (BitConverter.SingleToInt32Bits(t) & 1) == 0;
        return tEven ? m : Math.BitDecrement(m);
    }
}
