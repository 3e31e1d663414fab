using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

/// <summary>Keys of the meta table: the highest sequence ever assigned, and the retention anchor of the hash chain.</summary>
internal static class StoreMeta
{
    public const string LastSequenceKey = "last_sequence";
    public const string AnchorSequenceKey = "anchor_sequence";            // first sequence that may still be stored
    public const string AnchorPreviousSequenceKey = "anchor_prev_sequence"; // last deleted sequence
    public const string AnchorPreviousHashKey = "anchor_prev_hash";       // hash of the last deleted record

    public readonly record struct Anchor(ulong FirstSequence, ulong PreviousSequence, byte[] PreviousHash);

    public static ulong ReadUInt64(SqliteConnection connection, string key, SqliteTransaction? tx = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT value FROM meta WHERE key = $key";
        command.Parameters.AddWithValue("$key", key);
        object? value = command.ExecuteScalar();
        return value is long l ? (ulong)l : 0;
    }

    public static Anchor? ReadAnchor(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT key, value FROM meta WHERE key IN ($a, $b, $c)";
        command.Parameters.AddWithValue("$a", AnchorSequenceKey);
        command.Parameters.AddWithValue("$b", AnchorPreviousSequenceKey);
        command.Parameters.AddWithValue("$c", AnchorPreviousHashKey);
        ulong first = 0, previous = 0;
        byte[]? hash = null;
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            switch (reader.GetString(0))
            {
                case AnchorSequenceKey: first = (ulong)reader.GetInt64(1); break;
                case AnchorPreviousSequenceKey: previous = (ulong)reader.GetInt64(1); break;
                case AnchorPreviousHashKey: hash = reader.GetValue(1) as byte[]; break;
            }
        }
        return hash is null ? null : new Anchor(first, previous, hash);
    }

    public static void Write(SqliteConnection connection, SqliteTransaction tx, string key, object value)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "INSERT INTO meta(key, value) VALUES($key, $value) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
        command.Parameters.AddWithValue("$key", key);
        command.Parameters.AddWithValue("$value", value);
        command.ExecuteNonQuery();
    }
}
