package squeezer.localstack;

import java.lang.instrument.Instrumentation;

/**
 * Stand-in for LocalStack's ddb-local-loader jar, which it would download and
 * pass to DynamoDB Local as -javaagent (it only lifts the 20-GSI limit).
 * The JVM refuses to start without a valid agent jar, so this one does nothing.
 */
public final class NoopAgent {
    private NoopAgent() {}

    public static void premain(String args, Instrumentation inst) {
        // intentionally empty
    }
}
