using Microsoft.Data.Sqlite;

namespace RamPay.Events;

/// <summary>
/// The SQLite pieces shared by the local stores of the embedded default (the event log, the webhook store, the
/// notification store), kept in one place so that every store opens its file with the same durability and waits the
/// same way for a writer's lock, and keeps its consumer checkpoint (a table <c>checkpoint(name, sequence, idx, ordinal)</c>) the same way.
/// </summary>
public static class LocalStoreSql
{
    /// <summary>
    /// Opens a connection with <c>synchronous=FULL</c> (a committed transaction survives a power loss: a consumer's
    /// checkpoint must never run ahead of the effects stored with it) and a 30 s busy timeout (the dispatcher and the
    /// consumer write the same file from two threads).
    /// </summary>
    public static SqliteConnection Open(string connectionString)
    {
        var c = new SqliteConnection(connectionString);
        c.Open();
        using var pragma = c.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;";
        pragma.ExecuteNonQuery();
        return c;
    }

    /// <summary>Records <paramref name="position"/> for consumer <paramref name="name"/> inside <paramref name="tx"/>, the transaction that stores what the consumer did with the events up to it.</summary>
    public static void WriteCheckpoint(SqliteConnection c, SqliteTransaction tx, string name, EventPosition position)
    {
        using var cp = c.CreateCommand();
        cp.Transaction = tx;
        cp.CommandText = "INSERT INTO checkpoint(name, sequence, idx, ordinal) VALUES($n,$s,$i,$o) ON CONFLICT(name) DO UPDATE SET sequence=$s, idx=$i, ordinal=$o";
        cp.Parameters.AddWithValue("$n", name);
        cp.Parameters.AddWithValue("$s", position.Sequence);
        cp.Parameters.AddWithValue("$i", position.Index);
        cp.Parameters.AddWithValue("$o", position.Ordinal);
        cp.ExecuteNonQuery();
    }

    /// <summary>
    /// Adds the claim column (<c>claimed_until_ms</c>, issue 12's leases) to <paramref name="table"/> of a file made before
    /// it, or clears the claims found there: one process owns a local store, so a claim found at open is a dead process's.
    /// </summary>
    public static void PrepareClaims(SqliteConnection c, string table)
    {
        using var cols = c.CreateCommand();
        cols.CommandText = $"SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name='claimed_until_ms'";
        using var migrate = c.CreateCommand();
        migrate.CommandText = (long)cols.ExecuteScalar()! == 0
            ? $"ALTER TABLE {table} ADD COLUMN claimed_until_ms INTEGER NOT NULL DEFAULT 0"
            : $"UPDATE {table} SET claimed_until_ms=0 WHERE claimed_until_ms<>0";
        migrate.ExecuteNonQuery();
    }

    /// <summary>Ends the claims on rows <paramref name="ids"/> of <paramref name="table"/> (given back unattempted), in one transaction.</summary>
    public static void ReleaseClaims(string connectionString, string table, IReadOnlyCollection<long> ids)
    {
        if (ids.Count == 0) return;
        using var c = Open(connectionString);
        using var tx = c.BeginTransaction();
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = $"UPDATE {table} SET claimed_until_ms=0 WHERE id=$id";
        var p = cmd.Parameters.Add(new SqliteParameter { ParameterName = "$id" });
        foreach (long id in ids) { p.Value = id; cmd.ExecuteNonQuery(); }
        tx.Commit();
    }

    /// <summary>The position consumer <paramref name="name"/> reached, or <see cref="EventPosition.None"/> before its first batch.</summary>
    public static EventPosition ReadCheckpoint(string connectionString, string name)
    {
        using var c = Open(connectionString);
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT sequence, idx, ordinal FROM checkpoint WHERE name=$n";
        cmd.Parameters.AddWithValue("$n", name);
        using var r = cmd.ExecuteReader();
        return r.Read() ? new EventPosition(r.GetInt64(0), r.GetInt32(1), r.GetInt32(2)) : EventPosition.None;
    }
}
