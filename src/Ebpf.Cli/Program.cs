// Placeholder entry point: kubectl-exectrace commands land with the gRPC API.
Console.Error.WriteLine("kubectl-exectrace: not wired yet");
return 1;
