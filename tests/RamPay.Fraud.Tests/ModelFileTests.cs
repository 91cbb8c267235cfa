namespace RamPay.Fraud.Tests;

public class ModelFileTests
{
    private static FraudModel SmallTrees() => FraudModel.CreateTrees("trees-test-1", "test-schema", 3, baseLogit: -1.0,
    [
        // x0 <= 10 ? (x1 <= 0.5 ? -2 : 1) : 3
        [TreeNode.Split(0, 10, 1), TreeNode.Split(1, 0.5, 3), TreeNode.Leaf(3), TreeNode.Leaf(-2), TreeNode.Leaf(1)],
        [TreeNode.Leaf(0.25)],
    ], [new("trained_by", "a test")]);

    [Fact]
    public void A_tree_ensemble_sums_one_leaf_per_tree()
    {
        var m = SmallTrees();
        Assert.Equal(-1 - 2 + 0.25, m.Logit([5, 0, 99]));
        Assert.Equal(-1 + 1 + 0.25, m.Logit([10, 0.75, 0]));
        Assert.Equal(-1 + 3 + 0.25, m.Logit([10.5, 0, 0]));
        Assert.Equal(DetMath.Sigmoid(2.25), m.Score([11, 0, 0]));
        Assert.Equal(2, m.TreeCount);
        Assert.Equal("a test", m.MetadataValue("trained_by"));
        Assert.False(m.FitsFeatureSchema);
    }

    [Fact]
    public void A_logistic_model_standardizes_then_weighs()
    {
        var m = FraudModel.CreateLogistic("lr-test-1", "s", bias: 0.5, mean: [1, 10], scale: [2, 5], weights: [3, -1]);
        Assert.Equal(0.5 + 3 * ((5 - 1) / 2.0) - 1 * ((0 - 10) / 5.0), m.Logit([5, 0]));
        Assert.Equal(FraudModelKind.Logistic, m.Kind);
    }

    [Fact]
    public void Bytes_round_trip_and_identify_the_model()
    {
        var m = SmallTrees();
        var again = FraudModel.Parse(m.ToBytes());
        Assert.Equal(m.ToBytes(), again.ToBytes());
        Assert.Equal(m.Sha256Hex, again.Sha256Hex);
        Assert.Equal("trees-test-1", again.Version);
        Assert.Equal("test-schema", again.SchemaId);
        Assert.Equal(m.Logit([5, 1, 0]), again.Logit([5, 1, 0]));
        Assert.StartsWith("RPFM", System.Text.Encoding.ASCII.GetString(m.ToBytes(), 0, 4));
    }

    [Fact]
    public void A_damaged_file_is_refused_with_a_reason()
    {
        byte[] bytes = SmallTrees().ToBytes();
        for (int i = 0; i < bytes.Length; i += 7)
        {
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0x20;
            Assert.Throws<InvalidDataException>(() => FraudModel.Parse(copy));
        }
        Assert.Throws<InvalidDataException>(() => FraudModel.Parse(bytes.AsSpan(0, bytes.Length - 1)));
        Assert.Throws<InvalidDataException>(() => FraudModel.Parse("not a model"u8));
    }

    [Fact]
    public void Trees_whose_children_point_backwards_are_refused()
    {
        var e = Assert.Throws<InvalidDataException>(() => FraudModel.CreateTrees("bad", "s", 1, 0,
            [[TreeNode.Split(0, 1, 1), TreeNode.Split(0, 2, 0), TreeNode.Leaf(1)]]));
        Assert.Contains("children out of place", e.Message);
        Assert.Throws<InvalidDataException>(() => FraudModel.CreateTrees("bad", "s", 1, 0, [[TreeNode.Split(3, 1, 1), TreeNode.Leaf(0), TreeNode.Leaf(1)]]));
    }

    [Fact]
    public void The_complete_tree_layout_gives_the_node_walk_s_logit_bit_for_bit()
    {
        // The shipped ensemble (oblivious, depth 4: one vector compare per tree), and trained ones that take each of the
        // other paths, with a tree count that is not a multiple of four, on random rows and on rows sitting on thresholds.
        var rng = new Random(8);
        var planted = Enumerable.Range(0, 3_000).Select(_ => (Enumerable.Range(0, 5).Select(_ => Math.Round(rng.NextDouble(), 2)).ToArray(), rng.Next(3) == 0)).ToList();
        var data = RamPay.Fraud.Training.LabelledSet.FromRows(5, planted);
        var all = Enumerable.Range(0, data.Count).ToArray();
        FraudModel Trained(int depth, bool oblivious) => RamPay.Fraud.Training.GradientBoostingTrainer.Train(data, all, "m", "s",
            new RamPay.Fraud.Training.GradientBoostingOptions { Trees = 7, MaxDepth = depth, Oblivious = oblivious }).Model;
        var obliviousDeep = Trained(6, oblivious: true);   // per-level comparisons, scalar
        var ordinary = Trained(6, oblivious: false);       // complete-tree walks, four at a time
        var tooDeep = Trained(10, oblivious: false);       // node walk only
        Assert.True(FraudModel.Default.IsOblivious && obliviousDeep.IsOblivious && !ordinary.IsOblivious);
        foreach (var (model, width) in new[] { (FraudModel.Default, Features.Count), (obliviousDeep, 5), (ordinary, 5), (tooDeep, 5) })
        {
            for (int i = 0; i < 20_000; i++)
            {
                var x = Enumerable.Range(0, width).Select(_ => rng.Next(4) == 0 ? Math.Round(rng.NextDouble() * 8, 1) : rng.NextDouble() * 30 - 2).ToArray();
                Assert.Equal(model.NodeWalkLogit(x), model.Logit(x));
            }
        }
    }

    [Fact]
    public void Scoring_allocates_nothing()
    {
        var m = SmallTrees();
        double[] x = [3, 1, 0];
        double sum = m.Score(x);
        Allocations.AssertARoundAllocatesNothing(_ =>
        {
            for (int i = 0; i < 100_000; i++) sum += m.Score(x);
        });
        Assert.True(sum > 0);
    }
}

public class DefaultModelTests
{
    [Fact]
    public void The_embedded_default_model_loads_and_reads_the_writer_s_features()
    {
        var m = FraudModel.Default;
        Assert.Equal(FraudModelKind.TreeEnsemble, m.Kind);
        Assert.True(m.IsOblivious);
        Assert.True(m.FitsFeatureSchema);
        Assert.Equal("gbt-default-s1", m.Version);
        Assert.Equal("rampay fraud train", m.MetadataValue("trained_by"));
        Assert.Same(m, FraudModel.Default);
        Assert.NotNull(FraudModelCatalog.WithDefault().Find(m.Sha256));
        // A quiet first payment between old accounts scores low; a night-time drain to a brand-new account, high.
        var store = new FeatureStore(10);
        Span<double> f = stackalloc double[Features.Count];
        long now = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000 + 14 * 3_600_000L;
        store.ComputeAndRecord(new PaymentFacts(1, 2, 2_500, now, now - 300L * 86_400_000, now - 400L * 86_400_000, 100_000), f);
        Assert.True(m.Score(f) < 0.5, $"ordinary payment scored {m.Score(f)}");
    }
}
