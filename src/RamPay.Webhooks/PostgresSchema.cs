using System.Text.RegularExpressions;
using Npgsql;

namespace RamPay.Webhooks;

/// <summary>
/// The workers' shared PostgreSQL store's plumbing (docs/webhooks.md, "Workers"): a schema of its own, created and
/// migrated at start under an advisory lock (two workers starting at once do not race on CREATE), and numbered
/// migrations recorded in <c>{schema}.workers_migrations</c> so that a later version adds to what an earlier one made.
/// </summary>
public static partial class PostgresSchema
{
    public const string DefaultSchema = "rampay_workers";

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();

    /// <summary>Throws unless <paramref name="schema"/> is a plain lower-case identifier (it is spliced into SQL).</summary>
    public static string Check(string schema) =>
        SchemaName().IsMatch(schema) ? schema : throw new ArgumentException($"'{schema}' is not a schema name (a-z, 0-9, _; at most 63)");

    /// <summary>Applies the migrations of <paramref name="part"/> ("webhooks", "notifications") not applied yet, in order, each in its own transaction.</summary>
    public static void Migrate(NpgsqlDataSource source, string schema, string part, IReadOnlyList<string> migrations)
    {
        using var c = source.OpenConnection();
        using var tx = c.BeginTransaction();
        using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('rampay_workers_migrate:' || @s))", c, tx))
        {
            lockCmd.Parameters.AddWithValue("s", schema);
            lockCmd.ExecuteNonQuery();
        }
        Exec(c, tx, $"CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {schema}.workers_migrations(part text NOT NULL, version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY(part, version))");
        int have;
        using (var v = new NpgsqlCommand($"SELECT COALESCE(MAX(version), 0) FROM {schema}.workers_migrations WHERE part=@p", c, tx))
        {
            v.Parameters.AddWithValue("p", part);
            have = Convert.ToInt32(v.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        for (int i = have; i < migrations.Count; i++)
        {
            Exec(c, tx, migrations[i].Replace("{schema}", schema, StringComparison.Ordinal));
            using var rec = new NpgsqlCommand($"INSERT INTO {schema}.workers_migrations(part, version) VALUES(@p, @v)", c, tx);
            rec.Parameters.AddWithValue("p", part);
            rec.Parameters.AddWithValue("v", i + 1);
            rec.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>Records consumer <paramref name="name"/>'s position in <paramref name="table"/> (schema-qualified) inside <paramref name="tx"/>, with the effects.</summary>
    public static void WriteCheckpoint(NpgsqlConnection c, NpgsqlTransaction tx, string table, string name, RamPay.Events.EventPosition pos)
    {
        using var cp = new NpgsqlCommand($"INSERT INTO {table}(name, sequence, idx, ordinal) VALUES(@n,@s,@i,@o) ON CONFLICT (name) DO UPDATE SET sequence=@s, idx=@i, ordinal=@o", c, tx);
        cp.Parameters.AddWithValue("n", name); cp.Parameters.AddWithValue("s", pos.Sequence); cp.Parameters.AddWithValue("i", pos.Index); cp.Parameters.AddWithValue("o", pos.Ordinal);
        cp.ExecuteNonQuery();
    }

    /// <summary>Consumer <paramref name="name"/>'s position in <paramref name="table"/>, or <see cref="RamPay.Events.EventPosition.None"/>.</summary>
    public static RamPay.Events.EventPosition ReadCheckpoint(NpgsqlDataSource source, string table, string name)
    {
        using var cmd = source.CreateCommand($"SELECT sequence, idx, ordinal FROM {table} WHERE name=@n");
        cmd.Parameters.AddWithValue("n", name);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new RamPay.Events.EventPosition(r.GetInt64(0), r.GetInt32(1), r.GetInt32(2)) : RamPay.Events.EventPosition.None;
    }

    private static void Exec(NpgsqlConnection c, NpgsqlTransaction tx, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, c, tx);
        cmd.ExecuteNonQuery();
    }
}
