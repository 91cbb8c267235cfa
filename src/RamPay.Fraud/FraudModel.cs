using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;
using System.Text;

namespace RamPay.Fraud;

/// <summary>Persisted in model files: values frozen.</summary>
public enum FraudModelKind : byte
{
    /// <summary>Logistic regression on standardized features.</summary>
    Logistic = 1,
    /// <summary>Gradient-boosted regression trees summed into a logit.</summary>
    TreeEnsemble = 2,
}

/// <summary>One node of a regression tree: a split (feature, threshold, children Left and Left + 1) or a leaf (Feature = -1, Value = its logit).</summary>
public readonly record struct TreeNode(int Feature, double Value, int Left)
{
    public bool IsLeaf => Feature < 0;
    public static TreeNode Leaf(double value) => new(-1, value, 0);
    public static TreeNode Split(int feature, double threshold, int left) => new(feature, threshold, left);
}

/// <summary>
/// A trained fraud model, immutable: a logistic regression or a tree ensemble, with a version string, the feature
/// schema it was trained on and free-form metadata (how it was trained, what it measured). Scoring walks flat arrays
/// and allocates nothing. The model is defined by its file bytes (<see cref="Bytes"/>, identified by their SHA-256):
/// the ledger keeps those bytes in its snapshots so that a replay scores with exactly the model the live run used.
/// <para>
/// File format (little-endian), version 1:
/// <code>
/// "RPFM" | u16 format version = 1 | u8 kind | u8 reserved = 0
/// str version | str feature schema id | u16 feature count | u16 metadata pairs, then (str key, str value) each
/// kind 1 (logistic):  f64 bias, then per feature: f64 mean, f64 scale, f64 weight
/// kind 2 (trees):     f64 base logit, u32 trees, then per tree: u32 nodes, then per node: i32 feature (-1 = leaf),
///                     i32 left child (tree-local; the right child is left + 1), f64 threshold or leaf value
/// u64 FNV-1a of every byte before it
/// </code>
/// where str is a u16 byte length and UTF-8. The logistic logit is bias + Σ weight·(x − mean)/scale; a split sends
/// x ≤ threshold left, and an ensemble's logit is base + ((a0 + a1) + (a2 + a3)) with a_k the leaves of trees t ≡ k
/// (mod 4) added in tree order; the score is the logistic function of the logit, computed with <see cref="DetMath"/>. (The scorer
/// multiplies by 1/scale, computed once at load, rather than divide: the same on every machine, within an ulp of it.)
/// </para>
/// </summary>
public sealed class FraudModel
{
    public const ushort FormatVersion = 1;
    public const int MaxTrees = 4096;
    public const int MaxNodesPerTree = 1 << 16;
    public const string DefaultResourceName = "RamPay.Fraud.default.rpfm";
    private static ReadOnlySpan<byte> Magic => "RPFM"u8;

    private readonly byte[] _bytes;
    private readonly double[] _mean = [], _scale = [], _weights = [];
    private readonly double _bias;
    private readonly int[] _roots = [];
    private readonly Node[] _nodes = [];
    // The trees again, each as a complete binary tree of depth _depth in heap order (children of i at 2i+1, 2i+2): a
    // leaf above the bottom is pushed down through splits on +∞ (always left) whose leaves all hold its value. A walk
    // is then exactly _depth steps of "i = 2i + 1 + (x > threshold)", with no branch to mispredict, over three flat
    // arrays. 0 = not built (a tree deeper than MaxFastDepth): the node walk is used.
    private const int MaxFastDepth = 8;
    private readonly int _depth;
    private readonly byte[] _fastFeature = [];
    private readonly double[] _fastThreshold = [];
    private readonly double[] _fastLeaf = [];
    // When every level of every (completed) tree splits all its nodes on one (feature, threshold) — oblivious trees,
    // as the trainer grows them — a tree is scored by _depth independent comparisons whose bits, first level most
    // significant, index its leaf: no comparison waits for another. Null otherwise.
    private readonly byte[]? _levelFeature;
    private readonly double[]? _levelThreshold;
    // Oblivious trees of depth at most 4, four levels to a vector: lane k compares level k (unused levels compare
    // feature 0 with +∞: never greater), the comparison's sign bits (lane k = bit k) index the tree's 16 leaves, which
    // are stored in that order. One vector compare per tree. Null when the trees are deeper or not oblivious.
    private readonly int[]? _vectorFeature;
    private readonly double[]? _vectorThreshold;
    private readonly double[]? _vectorLeaf;

    private struct Node
    {
        public int Feature;
        public int Left;
        public double Value;
    }

    private FraudModel(byte[] bytes, FraudModelKind kind, string version, string schemaId, int featureCount,
        IReadOnlyList<KeyValuePair<string, string>> metadata, double bias, double[] mean, double[] scale, double[] weights, int[] roots, Node[] nodes)
    {
        _bytes = bytes;
        Kind = kind;
        Version = version;
        SchemaId = schemaId;
        FeatureCount = featureCount;
        Metadata = metadata;
        _bias = bias;
        _mean = mean;
        _scale = scale;
        _weights = weights;
        _roots = roots;
        _nodes = nodes;
        Sha256 = SHA256.HashData(bytes);
        if (kind == FraudModelKind.TreeEnsemble && BuildComplete(roots, nodes, featureCount) is { } fast)
        {
            (_depth, _fastFeature, _fastThreshold, _fastLeaf) = fast;
            (_levelFeature, _levelThreshold) = Levels(roots.Length, _depth, _fastFeature, _fastThreshold);
            if (_levelFeature is not null && _depth <= 4)
                (_vectorFeature, _vectorThreshold, _vectorLeaf) = Vectorize(roots.Length, _depth, _levelFeature, _levelThreshold!, _fastLeaf);
        }
    }

    private static (int[], double[], double[]) Vectorize(int trees, int depth, byte[] levelFeature, double[] levelThreshold, double[] leaf)
    {
        var feature = new int[trees * 4];
        var threshold = new double[trees * 4];
        var leaves = new double[trees * 16];
        for (int t = 0; t < trees; t++)
        {
            for (int k = 0; k < 4; k++)
            {
                feature[t * 4 + k] = k < depth ? levelFeature[t * depth + k] : 0;
                threshold[t * 4 + k] = k < depth ? levelThreshold[t * depth + k] : double.PositiveInfinity;
            }
            for (int mask = 0; mask < 16; mask++)
            {
                // The node walk's leaf: level 0's bit is the most significant of `depth` bits; levels past depth never set bits.
                int index = 0;
                for (int k = 0; k < depth; k++) index = (index << 1) | ((mask >> k) & 1);
                leaves[t * 16 + mask] = (mask >> depth) == 0 ? leaf[t * (1 << depth) + index] : double.NaN; // unreachable masks
            }
        }
        return (feature, threshold, leaves);
    }

    /// <summary>Whether all nodes of each level of each complete tree share their split; if so, those splits per level.</summary>
    private static (byte[]?, double[]?) Levels(int trees, int depth, byte[] feature, double[] threshold)
    {
        int inner = (1 << depth) - 1;
        var levelFeature = new byte[trees * depth];
        var levelThreshold = new double[trees * depth];
        for (int t = 0; t < trees; t++)
        {
            for (int level = 0; level < depth; level++)
            {
                int first = t * inner + (1 << level) - 1, count = 1 << level;
                for (int k = 1; k < count; k++)
                    if (feature[first + k] != feature[first] || threshold[first + k] != threshold[first]) return (null, null);
                levelFeature[t * depth + level] = feature[first];
                levelThreshold[t * depth + level] = threshold[first];
            }
        }
        return (levelFeature, levelThreshold);
    }

    /// <summary>True when the trees are oblivious (scored by independent comparisons per level).</summary>
    public bool IsOblivious => _levelFeature is not null;

    private static (int Depth, byte[] Feature, double[] Threshold, double[] Leaf)? BuildComplete(int[] roots, Node[] nodes, int featureCount)
    {
        if (featureCount > byte.MaxValue + 1) return null;
        // Depth of every node (children come after their parent, so one forward pass sees each parent first).
        var depthOf = new int[nodes.Length];
        int depth = 0;
        for (int n = 0; n < nodes.Length; n++)
        {
            if (nodes[n].Feature < 0) { depth = Math.Max(depth, depthOf[n]); continue; }
            depthOf[nodes[n].Left] = Math.Max(depthOf[nodes[n].Left], depthOf[n] + 1);
            depthOf[nodes[n].Left + 1] = Math.Max(depthOf[nodes[n].Left + 1], depthOf[n] + 1);
            if (depthOf[n] + 1 > MaxFastDepth) return null;
        }
        int inner = (1 << depth) - 1, leaves = 1 << depth;
        var feature = new byte[roots.Length * inner];
        var threshold = new double[roots.Length * inner];
        var leaf = new double[roots.Length * leaves];
        for (int t = 0; t < roots.Length; t++)
            if (!Fill(roots[t], 0, 0, t * inner, t * leaves)) return null;
        return (depth, feature, threshold, leaf);

        // Places node n at heap position h (depth d) of the tree whose arrays start at innerAt and leafAt.
        bool Fill(int n, int h, int d, int innerAt, int leafAt)
        {
            ref readonly var node = ref nodes[n];
            if (d == depth)
            {
                if (node.Feature >= 0) return false; // deeper than the depth found: not a tree after all
                leaf[leafAt + h - inner] = node.Value;
                return true;
            }
            if (node.Feature < 0)
            {
                threshold[innerAt + h] = double.PositiveInfinity; // x > +∞ never: always left; both sides hold the leaf
                return Fill(n, 2 * h + 1, d + 1, innerAt, leafAt) && Fill(n, 2 * h + 2, d + 1, innerAt, leafAt);
            }
            feature[innerAt + h] = (byte)node.Feature;
            threshold[innerAt + h] = node.Value;
            return Fill(node.Left, 2 * h + 1, d + 1, innerAt, leafAt) && Fill(node.Left + 1, 2 * h + 2, d + 1, innerAt, leafAt);
        }
    }

    public FraudModelKind Kind { get; }
    /// <summary>The version string recorded with every score the model gives (e.g. <c>gbt-default-2026-11-21</c>).</summary>
    public string Version { get; }
    public string SchemaId { get; }
    public int FeatureCount { get; }
    public IReadOnlyList<KeyValuePair<string, string>> Metadata { get; }
    public byte[] Sha256 { get; }
    public string Sha256Hex => Convert.ToHexStringLower(Sha256);
    /// <summary>The model file's bytes (a copy).</summary>
    public byte[] ToBytes() => (byte[])_bytes.Clone();
    public int ByteLength => _bytes.Length;
    internal ReadOnlySpan<byte> Bytes => _bytes;
    public int TreeCount => _roots.Length;
    public int NodeCount => _nodes.Length;
    /// <summary>True when the model reads the features <see cref="FeatureStore"/> computes (the writer can score with it).</summary>
    public bool FitsFeatureSchema => SchemaId == Features.SchemaId && FeatureCount == Features.Count;

    public string? MetadataValue(string key)
    {
        foreach (var pair in Metadata) if (pair.Key == key) return pair.Value;
        return null;
    }

    /// <summary>The logit: bias plus weighted standardized features, or the base plus one leaf per tree.</summary>
    public double Logit(ReadOnlySpan<double> features)
    {
        if (features.Length < FeatureCount) throw new ArgumentException($"the model reads {FeatureCount} features", nameof(features));
        if (Kind == FraudModelKind.Logistic)
        {
            double z = _bias;
            var mean = _mean;
            var scale = _scale;
            var weights = _weights;
            for (int i = 0; i < weights.Length; i++) z += weights[i] * ((features[i] - mean[i]) * scale[i]);
            return z;
        }
        if (_vectorFeature is not null) return SumOfVectorLeaves(features);
        if (_levelFeature is not null) return SumOfObliviousLeaves(features);
        return _depth > 0 ? SumOfLeaves(features) : NodeWalkLogit(features);
    }

    /// <summary>
    /// How every path adds up a tree ensemble: tree t's leaf goes to accumulator t mod 4 (in tree order), then
    /// bias + ((a0 + a1) + (a2 + a3)). Four chains of additions instead of one, the same in every path, so every path
    /// gives the same logit bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private double Total(double a0, double a1, double a2, double a3) => _bias + ((a0 + a1) + (a2 + a3));

    /// <summary>As <see cref="SumOfObliviousLeaves"/>, one 4-lane compare per tree; the same sum, bit for bit.</summary>
    private double SumOfVectorLeaves(ReadOnlySpan<double> features)
    {
        int trees = _roots.Length;
        ref double x = ref MemoryMarshal.GetReference(features);
        ref int feature = ref MemoryMarshal.GetArrayDataReference(_vectorFeature!);
        ref double threshold = ref MemoryMarshal.GetArrayDataReference(_vectorThreshold!);
        ref double leaf = ref MemoryMarshal.GetArrayDataReference(_vectorLeaf!);
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int t = 0;
        for (; t + 4 <= trees; t += 4)
        {
            a0 += VectorLeaf(ref x, ref feature, ref threshold, ref leaf, 0);
            a1 += VectorLeaf(ref x, ref feature, ref threshold, ref leaf, 1);
            a2 += VectorLeaf(ref x, ref feature, ref threshold, ref leaf, 2);
            a3 += VectorLeaf(ref x, ref feature, ref threshold, ref leaf, 3);
            feature = ref Unsafe.Add(ref feature, 16);
            threshold = ref Unsafe.Add(ref threshold, 16);
            leaf = ref Unsafe.Add(ref leaf, 64);
        }
        for (int k = 0; t < trees; t++, k++)
        {
            double v = VectorLeaf(ref x, ref feature, ref threshold, ref leaf, k);
            if (k == 0) a0 += v; else if (k == 1) a1 += v; else a2 += v;
        }
        return Total(a0, a1, a2, a3);
    }

    /// <summary>The leaf of the k-th tree from the given position: four comparisons in one, their sign bits the leaf's index.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double VectorLeaf(ref double x, ref int feature, ref double threshold, ref double leaf, int k)
    {
        ref int f = ref Unsafe.Add(ref feature, 4 * k);
        var values = Vector256.Create(
            Unsafe.Add(ref x, f), Unsafe.Add(ref x, Unsafe.Add(ref f, 1)), Unsafe.Add(ref x, Unsafe.Add(ref f, 2)), Unsafe.Add(ref x, Unsafe.Add(ref f, 3)));
        uint mask = Vector256.GreaterThan(values, Vector256.LoadUnsafe(ref threshold, (nuint)(4 * k))).ExtractMostSignificantBits();
        return Unsafe.Add(ref leaf, 16 * k + (int)mask);
    }

    /// <summary>The bias plus one leaf per oblivious tree, added up as <see cref="Total"/> says: the same sum as the node walk, bit for bit.</summary>
    private double SumOfObliviousLeaves(ReadOnlySpan<double> features)
    {
        int depth = _depth, leaves = 1 << depth, trees = _roots.Length;
        ref double x = ref MemoryMarshal.GetReference(features);
        ref byte feature = ref MemoryMarshal.GetArrayDataReference(_levelFeature!);
        ref double threshold = ref MemoryMarshal.GetArrayDataReference(_levelThreshold!);
        ref double leaf = ref MemoryMarshal.GetArrayDataReference(_fastLeaf);
        Span<double> acc = stackalloc double[4];
        acc.Clear();
        for (int t = 0; t < trees; t++)
        {
            int index = 0;
            for (int level = 0; level < depth; level++)
                index = (index << 1) | (Unsafe.Add(ref x, Unsafe.Add(ref feature, level)) > Unsafe.Add(ref threshold, level) ? 1 : 0);
            acc[t & 3] += Unsafe.Add(ref leaf, index);
            feature = ref Unsafe.Add(ref feature, depth);
            threshold = ref Unsafe.Add(ref threshold, depth);
            leaf = ref Unsafe.Add(ref leaf, leaves);
        }
        return Total(acc[0], acc[1], acc[2], acc[3]);
    }

    /// <summary>The tree ensemble's logit by walking the nodes (trees too deep for the complete layout, and tests).</summary>
    internal double NodeWalkLogit(ReadOnlySpan<double> features)
    {
        Span<double> acc = stackalloc double[4];
        acc.Clear();
        var nodes = _nodes;
        for (int t = 0; t < _roots.Length; t++)
        {
            int n = _roots[t];
            while (true)
            {
                ref readonly var node = ref nodes[n];
                if (node.Feature < 0)
                {
                    acc[t & 3] += node.Value;
                    break;
                }
                n = features[node.Feature] <= node.Value ? node.Left : node.Left + 1;
            }
        }
        return Total(acc[0], acc[1], acc[2], acc[3]);
    }

    /// <summary>
    /// The bias plus one leaf per tree, added up as <see cref="Total"/> says: the same sum as the node walk, bit for bit. The caller checked
    /// that <paramref name="features"/> holds every feature; the layout's indices are in range by construction.
    /// </summary>
    private double SumOfLeaves(ReadOnlySpan<double> features)
    {
        int depth = _depth, inner = (1 << depth) - 1, trees = _roots.Length;
        ref double x = ref MemoryMarshal.GetReference(features);
        ref byte feature = ref MemoryMarshal.GetArrayDataReference(_fastFeature);
        ref double threshold = ref MemoryMarshal.GetArrayDataReference(_fastThreshold);
        ref double leaf = ref MemoryMarshal.GetArrayDataReference(_fastLeaf);
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int t = 0;
        // Four trees at a time: each step of a walk waits for a load and a compare, so four independent walks keep
        // the core busy. The leaves are still added in tree order.
        for (; t + 4 <= trees; t += 4)
        {
            ref byte f1 = ref Unsafe.Add(ref feature, inner);
            ref byte f2 = ref Unsafe.Add(ref feature, 2 * inner);
            ref byte f3 = ref Unsafe.Add(ref feature, 3 * inner);
            ref double h1 = ref Unsafe.Add(ref threshold, inner);
            ref double h2 = ref Unsafe.Add(ref threshold, 2 * inner);
            ref double h3 = ref Unsafe.Add(ref threshold, 3 * inner);
            int i0 = 0, i1 = 0, i2 = 0, i3 = 0;
            for (int d = 0; d < depth; d++)
            {
                i0 = Step(ref x, ref feature, ref threshold, i0);
                i1 = Step(ref x, ref f1, ref h1, i1);
                i2 = Step(ref x, ref f2, ref h2, i2);
                i3 = Step(ref x, ref f3, ref h3, i3);
            }
            a0 += Unsafe.Add(ref leaf, i0 - inner);
            a1 += Unsafe.Add(ref leaf, inner + 1 + i1 - inner);
            a2 += Unsafe.Add(ref leaf, 2 * (inner + 1) + i2 - inner);
            a3 += Unsafe.Add(ref leaf, 3 * (inner + 1) + i3 - inner);
            feature = ref Unsafe.Add(ref feature, 4 * inner);
            threshold = ref Unsafe.Add(ref threshold, 4 * inner);
            leaf = ref Unsafe.Add(ref leaf, 4 * (inner + 1));
        }
        for (int k = 0; t < trees; t++, k++)
        {
            int i = 0;
            for (int d = 0; d < depth; d++) i = Step(ref x, ref feature, ref threshold, i);
            double v = Unsafe.Add(ref leaf, i - inner);
            if (k == 0) a0 += v; else if (k == 1) a1 += v; else a2 += v;
            feature = ref Unsafe.Add(ref feature, inner);
            threshold = ref Unsafe.Add(ref threshold, inner);
            leaf = ref Unsafe.Add(ref leaf, inner + 1);
        }
        return Total(a0, a1, a2, a3);
    }

    /// <summary>One step down a complete tree: to 2i + 1 when x ≤ threshold, else to 2i + 2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Step(ref double x, ref byte feature, ref double threshold, int i) =>
        2 * i + 1 + (Unsafe.Add(ref x, Unsafe.Add(ref feature, i)) > Unsafe.Add(ref threshold, i) ? 1 : 0);

    /// <summary>The probability of fraud the model gives, in [0, 1].</summary>
    public double Score(ReadOnlySpan<double> features) => DetMath.Sigmoid(Logit(features));

    // ---- building ----

    public static FraudModel CreateLogistic(string version, string schemaId, double bias, double[] mean, double[] scale, double[] weights,
        IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        if (mean.Length != weights.Length || scale.Length != weights.Length) throw new ArgumentException("mean, scale and weights must have one entry per feature");
        var w = new ModelWriter();
        w.Header(FraudModelKind.Logistic, version, schemaId, weights.Length, metadata);
        w.F64(bias);
        for (int i = 0; i < weights.Length; i++)
        {
            w.F64(mean[i]);
            w.F64(scale[i]);
            w.F64(weights[i]);
        }
        return Parse(w.Finish());
    }

    /// <summary>A tree ensemble; each tree's nodes are tree-local, root first, with a split's children at Left and Left + 1 (both after it).</summary>
    public static FraudModel CreateTrees(string version, string schemaId, int featureCount, double baseLogit, IReadOnlyList<TreeNode[]> trees,
        IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        var w = new ModelWriter();
        w.Header(FraudModelKind.TreeEnsemble, version, schemaId, featureCount, metadata);
        w.F64(baseLogit);
        w.U32((uint)trees.Count);
        foreach (var tree in trees)
        {
            w.U32((uint)tree.Length);
            foreach (var node in tree)
            {
                w.I32(node.IsLeaf ? -1 : node.Feature);
                w.I32(node.IsLeaf ? 0 : node.Left);
                w.F64(node.Value);
            }
        }
        return Parse(w.Finish());
    }

    // ---- reading ----

    public static FraudModel Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 4 + 2 + 2 + 8 || !bytes[..4].SequenceEqual(Magic)) throw new InvalidDataException("not a RamPay fraud model file (no RPFM magic)");
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(bytes[^8..]);
        if (stored != Fnv1a(bytes[..^8])) throw new InvalidDataException("the fraud model file is damaged: its checksum does not match");
        var r = new ModelReader(bytes[..^8]);
        r.Skip(4);
        ushort format = r.U16();
        if (format != FormatVersion) throw new InvalidDataException($"fraud model format version {format} is not known (this RamPay reads {FormatVersion})");
        var kind = (FraudModelKind)r.U8();
        if (r.U8() != 0) throw new InvalidDataException("fraud model: reserved byte is not zero");
        string version = r.Str();
        if (version.Length is < 1 or > 100) throw new InvalidDataException("fraud model: the version string must be 1..100 characters");
        string schema = r.Str();
        int features = r.U16();
        if (features < 1) throw new InvalidDataException("fraud model: no features");
        int pairs = r.U16();
        var metadata = new List<KeyValuePair<string, string>>(pairs);
        for (int i = 0; i < pairs; i++) metadata.Add(new(r.Str(), r.Str()));

        double bias = r.F64();
        CheckFinite(bias);
        FraudModel model;
        if (kind == FraudModelKind.Logistic)
        {
            var mean = new double[features];
            var scale = new double[features];
            var weights = new double[features];
            for (int i = 0; i < features; i++)
            {
                mean[i] = CheckFinite(r.F64());
                scale[i] = CheckFinite(r.F64());
                weights[i] = CheckFinite(r.F64());
                if (!(scale[i] > 0)) throw new InvalidDataException($"fraud model: feature {i} has a scale that is not positive");
            }
            // Kept as 1 / scale: a multiplication per feature when scoring instead of a division.
            var inverse = new double[features];
            for (int i = 0; i < features; i++) inverse[i] = 1 / scale[i];
            model = new FraudModel(bytes.ToArray(), kind, version, schema, features, metadata, bias, mean, inverse, weights, [], []);
        }
        else if (kind == FraudModelKind.TreeEnsemble)
        {
            uint treeCount = r.U32();
            if (treeCount < 1 || treeCount > MaxTrees) throw new InvalidDataException($"fraud model: {treeCount} trees; 1..{MaxTrees} allowed");
            var roots = new int[treeCount];
            var nodes = new List<Node>();
            for (int t = 0; t < treeCount; t++)
            {
                uint count = r.U32();
                if (count < 1 || count > MaxNodesPerTree) throw new InvalidDataException($"fraud model: tree {t} has {count} nodes; 1..{MaxNodesPerTree} allowed");
                int offset = nodes.Count;
                roots[t] = offset;
                for (int n = 0; n < count; n++)
                {
                    int feature = r.I32();
                    int left = r.I32();
                    double value = CheckFinite(r.F64());
                    if (feature >= features || feature < -1) throw new InvalidDataException($"fraud model: tree {t} node {n} reads feature {feature}; the model has {features}");
                    // Children come after their parent: every walk moves forward, so it ends.
                    if (feature >= 0 && (left <= n || left + 1 >= count)) throw new InvalidDataException($"fraud model: tree {t} node {n} has children out of place");
                    nodes.Add(new Node { Feature = feature, Left = feature >= 0 ? offset + left : 0, Value = value });
                }
            }
            model = new FraudModel(bytes.ToArray(), kind, version, schema, features, metadata, bias, [], [], [], roots, [.. nodes]);
        }
        else
        {
            throw new InvalidDataException($"fraud model kind {(byte)kind} is not known");
        }
        if (!r.AtEnd) throw new InvalidDataException("fraud model: bytes left over after the model");
        return model;
    }

    /// <summary>Reads a model file (the host's job; the ledger only ever sees parsed models).</summary>
    public static FraudModel Load(string path) => Parse(File.ReadAllBytes(path));

    public void Save(string path) => File.WriteAllBytes(path, _bytes);

    private static readonly Lazy<FraudModel> EmbeddedDefault = new(() =>
    {
        using var stream = typeof(FraudModel).Assembly.GetManifestResourceStream(DefaultResourceName)
            ?? throw new InvalidOperationException($"the default fraud model ({DefaultResourceName}) is not embedded in {typeof(FraudModel).Assembly.GetName().Name}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return Parse(copy.ToArray());
    });

    /// <summary>The model that ships with RamPay (src/RamPay.Fraud/Models/default.rpfm, embedded).</summary>
    public static FraudModel Default => EmbeddedDefault.Value;

    public override string ToString() => $"{Version} ({(Kind == FraudModelKind.Logistic ? "logistic regression" : $"{TreeCount} trees, {NodeCount} nodes")}, sha256 {Sha256Hex[..16]})";

    private static double CheckFinite(double v) => double.IsFinite(v) ? v : throw new InvalidDataException("fraud model: a number is not finite");

    internal static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in bytes)
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return h;
    }

    private sealed class ModelWriter
    {
        private readonly MemoryStream _stream = new();
        private readonly BinaryWriter _w;

        public ModelWriter() => _w = new BinaryWriter(_stream, Encoding.UTF8, leaveOpen: true);

        public void Header(FraudModelKind kind, string version, string schemaId, int featureCount, IEnumerable<KeyValuePair<string, string>>? metadata)
        {
            if (featureCount is < 1 or > ushort.MaxValue) throw new ArgumentOutOfRangeException(nameof(featureCount));
            _w.Write(Magic);
            _w.Write(FormatVersion);
            _w.Write((byte)kind);
            _w.Write((byte)0);
            Str(version);
            Str(schemaId);
            _w.Write((ushort)featureCount);
            var pairs = metadata?.ToList() ?? [];
            _w.Write(checked((ushort)pairs.Count));
            foreach (var (key, value) in pairs)
            {
                Str(key);
                Str(value);
            }
        }

        public void F64(double v) => _w.Write(v);
        public void U32(uint v) => _w.Write(v);
        public void I32(int v) => _w.Write(v);

        private void Str(string s)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(s);
            _w.Write(checked((ushort)utf8.Length));
            _w.Write(utf8);
        }

        public byte[] Finish()
        {
            _w.Flush();
            ulong sum = Fnv1a(_stream.GetBuffer().AsSpan(0, (int)_stream.Length));
            _w.Write(sum);
            _w.Flush();
            return _stream.ToArray();
        }
    }

    private ref struct ModelReader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _at;

        public readonly bool AtEnd => _at == _bytes.Length;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || _at + n > _bytes.Length) throw new InvalidDataException("fraud model file ends early");
            var s = _bytes.Slice(_at, n);
            _at += n;
            return s;
        }

        public void Skip(int n) => Take(n);
        public byte U8() => Take(1)[0];
        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public double F64() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

        public string Str()
        {
            int n = U16();
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(n));
            }
            catch (DecoderFallbackException)
            {
                throw new InvalidDataException("fraud model: a string is not valid UTF-8");
            }
        }
    }
}
