using System.Text;
using Ebpf.Core.Audit;

namespace Ebpf.Core.Tests.Audit;

public sealed class Utf8StringCacheTests
{
    [Fact]
    public void Get_SameBytesTwice_ReturnsSameInstance()
    {
        var cache = new Utf8StringCache();

        var first = cache.Get("system:authenticated"u8);
        var second = cache.Get("system:authenticated"u8);

        Assert.Equal("system:authenticated", first);
        Assert.Same(first, second);
    }

    [Fact]
    public void Get_LongerThanMaxLength_DecodedEveryTime()
    {
        var cache = new Utf8StringCache();
        var bytes = Encoding.UTF8.GetBytes(new string('a', Utf8StringCache.MaxLength + 1));

        var first = cache.Get(bytes);

        Assert.Equal(new string('a', Utf8StringCache.MaxLength + 1), first);
        Assert.NotSame(first, cache.Get(bytes));
    }

    /// <summary>Far more distinct values than slots, from several threads: every answer is still the right string.</summary>
    [Fact]
    public void Get_ManyDistinctValuesConcurrently_AlwaysCorrect()
    {
        var cache = new Utf8StringCache();
        var values = Enumerable.Range(0, Utf8StringCache.Slots * 4).Select(i => $"group-{i}-é").ToArray();
        var encoded = values.Select(Encoding.UTF8.GetBytes).ToArray();

        Parallel.For(0, 8, worker =>
        {
            var random = new Random(worker);
            for (var n = 0; n < 50_000; n++)
            {
                var i = random.Next(values.Length);
                Assert.Equal(values[i], cache.Get(encoded[i]));
            }
        });
    }
}
