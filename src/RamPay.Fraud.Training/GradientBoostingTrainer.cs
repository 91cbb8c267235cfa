using System.Globalization;

namespace RamPay.Fraud.Training;

public sealed record GradientBoostingOptions
{
    public int Trees { get; init; } = 60;
    public int MaxDepth { get; init; } = 4;
    public double LearningRate { get; init; } = 0.3;
    /// <summary>L2 penalty on leaf values (XGBoost's lambda).</summary>
    public double L2 { get; init; } = 1.0;
    /// <summary>A split must leave at least this much hessian (about p(1-p) per row) on each side.</summary>
    public double MinChildHessian { get; init; } = 1.0;
    /// <summary>Candidate thresholds per feature: quantiles of its training values.</summary>
    public int MaxBins { get; init; } = 64;
    public double MinGain { get; init; } = 1e-6;
    /// <summary>
    /// Oblivious trees (as CatBoost grows them): one split per level, shared by every node of that level. A tree is then
    /// scored by <see cref="MaxDepth"/> independent comparisons whose bits index its leaf, with no chain of dependent
    /// loads; false grows ordinary trees (each node its own best split).
    /// </summary>
    public bool Oblivious { get; init; } = true;

    public void Validate()
    {
        if (Trees is < 1 or > FraudModel.MaxTrees) throw new ArgumentException($"trees must be 1..{FraudModel.MaxTrees}");
        if (MaxDepth is < 1 or > 12) throw new ArgumentException("depth must be 1..12");
        if (!(LearningRate > 0 && LearningRate <= 1)) throw new ArgumentException("learning rate must be in (0, 1]");
        if (MaxBins is < 2 or > 255) throw new ArgumentException("bins must be 2..255");
        if (L2 < 0 || MinChildHessian < 0) throw new ArgumentException("penalties must not be negative");
    }
}

/// <summary>A trained ensemble and how much each feature's splits reduced the loss (total gain).</summary>
public sealed record TrainedTrees(FraudModel Model, double[] GainByFeature);

/// <summary>
/// Gradient-boosted regression trees for log-loss (second order, as XGBoost and LightGBM do it), with histogram
/// splits: each feature's training values are cut into at most <see cref="GradientBoostingOptions.MaxBins"/> quantile
/// bins once, and a node's best split is found from per-bin sums of gradients and hessians. A child's histogram is
/// its parent's minus its sibling's, so only the smaller child is scanned. Trees grow breadth-first to a fixed depth;
/// leaves hold −G/(H+λ) times the learning rate. Single-threaded with fixed tie-breaking: the same rows give the same
/// model, byte for byte. Thresholds are real training values, and a split sends x ≤ threshold left, exactly as the
/// bins did, so the scorer agrees with training.
/// </summary>
public static class GradientBoostingTrainer
{
    public static TrainedTrees Train(LabelledSet data, int[] rows, string version, string schemaId, GradientBoostingOptions? options = null,
        IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        options ??= new GradientBoostingOptions();
        options.Validate();
        int d = data.FeatureCount, n = rows.Length;
        if (n < 2) throw new ArgumentException("too few training rows");

        var edges = new double[d][];
        for (int j = 0; j < d; j++) edges[j] = BinEdges(data, rows, j, options.MaxBins);
        int maxBins = edges.Max(e => e.Length) + 1;
        var bins = new byte[n * d];
        for (int r = 0; r < n; r++)
        {
            var x = data.Row(rows[r]);
            for (int j = 0; j < d; j++) bins[r * d + j] = (byte)BinOf(edges[j], x[j]);
        }

        var label = new double[n];
        for (int r = 0; r < n; r++) label[r] = data.Label[rows[r]];
        double prior = Math.Clamp(label.Sum() / n, 1e-6, 1 - 1e-6);
        double baseLogit = DetMath.Log(prior / (1 - prior));
        var logit = new double[n];
        Array.Fill(logit, baseLogit);
        var g = new double[n];
        var h = new double[n];
        var order = new int[n];
        var scratch = new int[n];
        var gain = new double[d];
        var trees = new List<TreeNode[]>(options.Trees);
        var builder = new TreeBuilder(d, maxBins, bins, edges, g, h, order, scratch, options, gain);
        var oblivious = new ObliviousBuilder(d, maxBins, bins, edges, g, h, options, gain);

        for (int t = 0; t < options.Trees; t++)
        {
            for (int r = 0; r < n; r++)
            {
                double p = DetMath.Sigmoid(logit[r]);
                g[r] = p - label[r];
                h[r] = Math.Max(p * (1 - p), 1e-12);
            }
            var (tree, leafOf) = options.Oblivious ? oblivious.Build(n) : builder.Build(n);
            for (int r = 0; r < n; r++) logit[r] += tree[leafOf[r]].Value;
            trees.Add(tree);
        }

        var meta = new List<KeyValuePair<string, string>>
        {
            new("algorithm", options.Oblivious ? "gradient-boosted oblivious trees, log-loss, histogram splits" : "gradient-boosted trees, log-loss, histogram splits"),
            new("trees", options.Trees.ToString(CultureInfo.InvariantCulture)),
            new("max_depth", options.MaxDepth.ToString(CultureInfo.InvariantCulture)),
            new("learning_rate", options.LearningRate.ToString("R", CultureInfo.InvariantCulture)),
            new("l2", options.L2.ToString("R", CultureInfo.InvariantCulture)),
            new("max_bins", options.MaxBins.ToString(CultureInfo.InvariantCulture)),
            new("training_rows", n.ToString(CultureInfo.InvariantCulture)),
        };
        if (metadata is not null) meta.AddRange(metadata);
        return new TrainedTrees(FraudModel.CreateTrees(version, schemaId, d, baseLogit, trees, meta), gain);
    }

    /// <summary>Up to maxBins − 1 ascending cut values, each a training value: quantiles when there are many distinct ones.</summary>
    internal static double[] BinEdges(LabelledSet data, int[] rows, int feature, int maxBins)
    {
        var values = new double[rows.Length];
        for (int r = 0; r < rows.Length; r++) values[r] = data.X[rows[r] * data.FeatureCount + feature];
        Array.Sort(values);
        var distinct = new List<double>();
        foreach (double v in values) if (distinct.Count == 0 || v > distinct[^1]) distinct.Add(v);
        var cuts = new List<double>();
        if (distinct.Count <= maxBins)
        {
            cuts.AddRange(distinct.Take(distinct.Count - 1));
        }
        else
        {
            for (int q = 1; q < maxBins; q++)
            {
                double v = values[(int)((long)q * values.Length / maxBins)];
                if (v < distinct[^1] && (cuts.Count == 0 || v > cuts[^1])) cuts.Add(v);
            }
        }
        return [.. cuts];
    }

    /// <summary>The first bin whose cut is at least x (x ≤ cut), or the last bin.</summary>
    internal static int BinOf(double[] cuts, double x)
    {
        int lo = 0, hi = cuts.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (x <= cuts[mid]) hi = mid; else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>
    /// Grows one oblivious tree level by level: at each level every row's node so far is known (its path bits), one
    /// histogram per node is built in a single pass over the rows, and the (feature, cut) with the largest total gain
    /// over all nodes splits them all. A node whose children would fall below the minimum hessian adds no gain for
    /// that cut (it still splits; its sparse leaf is held near zero by λ). Stops early, with shallower complete
    /// levels, when no cut gains anything.
    /// </summary>
    private sealed class ObliviousBuilder(int d, int maxBins, byte[] bins, double[][] edges, double[] g, double[] h, GradientBoostingOptions o, double[] gain)
    {
        private int[] _node = [];

        public (TreeNode[] Tree, int[] LeafOf) Build(int n)
        {
            if (_node.Length != n) _node = new int[n];
            Array.Clear(_node);
            var splits = new List<(int Feature, int Bin)>();
            for (int level = 0; level < o.MaxDepth; level++)
            {
                int nodes = 1 << level;
                var hist = new double[nodes * d * maxBins * 2];
                var totals = new double[nodes * 2];
                for (int r = 0; r < n; r++)
                {
                    int node = _node[r];
                    double gr = g[r], hr = h[r];
                    totals[2 * node] += gr;
                    totals[2 * node + 1] += hr;
                    int row = r * d, at0 = node * d * maxBins;
                    for (int j = 0; j < d; j++)
                    {
                        int at = (at0 + j * maxBins + bins[row + j]) * 2;
                        hist[at] += gr;
                        hist[at + 1] += hr;
                    }
                }
                int bestFeature = -1, bestBin = -1;
                double bestGain = o.MinGain;
                for (int j = 0; j < d; j++)
                {
                    int cuts = edges[j].Length;
                    var gl = new double[nodes];
                    var hl = new double[nodes];
                    for (int b = 0; b < cuts; b++)
                    {
                        double total = 0;
                        for (int node = 0; node < nodes; node++)
                        {
                            int at = ((node * d + j) * maxBins + b) * 2;
                            gl[node] += hist[at];
                            hl[node] += hist[at + 1];
                            double gt = totals[2 * node], ht = totals[2 * node + 1];
                            double gr = gt - gl[node], hr = ht - hl[node];
                            if (hl[node] < o.MinChildHessian || hr < o.MinChildHessian) continue;
                            total += gl[node] * gl[node] / (hl[node] + o.L2) + gr * gr / (hr + o.L2) - gt * gt / (ht + o.L2);
                        }
                        if (total > bestGain)
                        {
                            bestGain = total;
                            bestFeature = j;
                            bestBin = b;
                        }
                    }
                }
                if (bestFeature < 0) break;
                gain[bestFeature] += bestGain;
                splits.Add((bestFeature, bestBin));
                for (int r = 0; r < n; r++) _node[r] = 2 * _node[r] + (bins[r * d + bestFeature] > bestBin ? 1 : 0);
            }

            // Leaves: −G/(H+λ) per path, times the learning rate.
            int depth = splits.Count, leaves = 1 << depth;
            var lg = new double[leaves];
            var lh = new double[leaves];
            for (int r = 0; r < n; r++) { lg[_node[r]] += g[r]; lh[_node[r]] += h[r]; }
            // As a complete tree in breadth-first order: level k's nodes are 2^k − 1 .. 2^(k+1) − 2, children of i at 2i+1, 2i+2.
            int inner = leaves - 1;
            var tree = new TreeNode[inner + leaves];
            for (int i = 0; i < inner; i++)
            {
                int level = 31 - System.Numerics.BitOperations.LeadingZeroCount((uint)(i + 1));
                var (feature, bin) = splits[level];
                tree[i] = TreeNode.Split(feature, edges[feature][bin], 2 * i + 1);
            }
            for (int leaf = 0; leaf < leaves; leaf++) tree[inner + leaf] = TreeNode.Leaf(-lg[leaf] / (lh[leaf] + o.L2) * o.LearningRate);
            var leafOf = new int[n];
            for (int r = 0; r < n; r++) leafOf[r] = inner + _node[r];
            return (tree, leafOf);
        }
    }

    private sealed class TreeBuilder(int d, int maxBins, byte[] bins, double[][] edges, double[] g, double[] h, int[] order, int[] scratch,
        GradientBoostingOptions o, double[] gain)
    {
        private readonly int[] _leafOf = new int[order.Length];

        private sealed record Pending(int Node, int Lo, int Hi, int Depth, double[] Histogram, double G, double H);

        public (TreeNode[] Tree, int[] LeafOf) Build(int n)
        {
            for (int r = 0; r < n; r++) order[r] = r;
            var nodes = new List<TreeNode> { default };
            var rootHist = Histogram(0, n);
            double g0 = 0, h0 = 0;
            for (int r = 0; r < n; r++) { g0 += g[r]; h0 += h[r]; }
            var queue = new Queue<Pending>();
            queue.Enqueue(new Pending(0, 0, n, 0, rootHist, g0, h0));
            while (queue.Count > 0)
            {
                var p = queue.Dequeue();
                var split = p.Depth < o.MaxDepth && p.Hi - p.Lo >= 2 ? BestSplit(p.Histogram, p.G, p.H) : null;
                if (split is not { } s)
                {
                    nodes[p.Node] = TreeNode.Leaf(-p.G / (p.H + o.L2) * o.LearningRate);
                    for (int r = p.Lo; r < p.Hi; r++) _leafOf[order[r]] = p.Node;
                    continue;
                }
                gain[s.Feature] += s.Gain;
                int mid = Partition(p.Lo, p.Hi, s.Feature, s.Bin);
                int left = nodes.Count;
                nodes.Add(default);
                nodes.Add(default);
                nodes[p.Node] = TreeNode.Split(s.Feature, edges[s.Feature][s.Bin], left);
                // Scan the smaller child; the larger one's histogram is the parent's minus it.
                bool leftSmaller = mid - p.Lo <= p.Hi - mid;
                var small = leftSmaller ? Histogram(p.Lo, mid) : Histogram(mid, p.Hi);
                var large = p.Histogram;
                for (int i = 0; i < large.Length; i++) large[i] -= small[i];
                var (leftHist, rightHist) = leftSmaller ? (small, large) : (large, small);
                queue.Enqueue(new Pending(left, p.Lo, mid, p.Depth + 1, leftHist, s.GLeft, s.HLeft));
                queue.Enqueue(new Pending(left + 1, mid, p.Hi, p.Depth + 1, rightHist, p.G - s.GLeft, p.H - s.HLeft));
            }
            return ([.. nodes], _leafOf);
        }

        /// <summary>Per feature and bin: the sum of gradients and of hessians of the rows order[lo..hi).</summary>
        private double[] Histogram(int lo, int hi)
        {
            var hist = new double[d * maxBins * 2];
            for (int k = lo; k < hi; k++)
            {
                int r = order[k];
                double gr = g[r], hr = h[r];
                int row = r * d;
                for (int j = 0; j < d; j++)
                {
                    int at = (j * maxBins + bins[row + j]) * 2;
                    hist[at] += gr;
                    hist[at + 1] += hr;
                }
            }
            return hist;
        }

        private readonly record struct Split(int Feature, int Bin, double Gain, double GLeft, double HLeft);

        private Split? BestSplit(double[] hist, double gTotal, double hTotal)
        {
            double parent = gTotal * gTotal / (hTotal + o.L2);
            Split? best = null;
            for (int j = 0; j < d; j++)
            {
                double gl = 0, hl = 0;
                int cuts = edges[j].Length;
                for (int b = 0; b < cuts; b++)
                {
                    int at = (j * maxBins + b) * 2;
                    gl += hist[at];
                    hl += hist[at + 1];
                    double gr = gTotal - gl, hr = hTotal - hl;
                    if (hl < o.MinChildHessian || hr < o.MinChildHessian) continue;
                    double gainHere = gl * gl / (hl + o.L2) + gr * gr / (hr + o.L2) - parent;
                    if (gainHere > o.MinGain && (best is null || gainHere > best.Value.Gain)) best = new Split(j, b, gainHere, gl, hl);
                }
            }
            return best;
        }

        /// <summary>Stable partition of order[lo..hi): rows whose bin is at most <paramref name="bin"/> first. Returns the boundary.</summary>
        private int Partition(int lo, int hi, int feature, int bin)
        {
            int left = lo, right = 0;
            for (int k = lo; k < hi; k++)
            {
                int r = order[k];
                if (bins[r * d + feature] <= bin) order[left++] = r;
                else scratch[right++] = r;
            }
            Array.Copy(scratch, 0, order, left, right);
            return left;
        }
    }
}
