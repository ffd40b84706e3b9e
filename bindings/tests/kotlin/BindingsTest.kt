// The Kotlin bindings against a real gateway + cosigner, as an Android app would use
// them: build an MpcConfig, open the wallet, sign a message with the cosigner, and
// `when`-switch on the MpcException subclass of a failure.
//
// Run by bindings/tests/test_kotlin.py (through bindings/test.sh), which starts the
// servers, creates the wallet through the Python bindings and passes it here in
// WALLET_MPC_TEST_* variables. Prints one line per check, `SIGNED <json>` for the
// harness to verify the signature with an independent library, and
// `N passed, N failed`; exits 1 if any check failed.

import kotlinx.coroutines.runBlocking
import uniffi.wallet_mpc_ffi.MpcConfig
import uniffi.wallet_mpc_ffi.MpcException
import uniffi.wallet_mpc_ffi.ProgressEvent
import uniffi.wallet_mpc_ffi.ProgressListener
import uniffi.wallet_mpc_ffi.defaultMpcConfig
import uniffi.wallet_mpc_ffi.newMpcClient
import uniffi.wallet_mpc_ffi.verifyEthereum
import uniffi.wallet_types.AccountKind
import uniffi.wallet_types.ErrorCode
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.system.exitProcess

private var passed = 0
private var failed = 0

private fun check(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (e: Throwable) {
        failed++
        println("FAIL $name: $e")
        e.printStackTrace(System.out)
    }
}

private fun require(cond: Boolean, what: () -> String) {
    if (!cond) throw AssertionError(what())
}

private fun env(name: String): String =
    System.getenv(name) ?: throw IllegalStateException("$name is not set (run through test_kotlin.py)")

/** What an app would show for a failure: the point of the typed errors. */
private fun describe(e: MpcException): String = when (e) {
    is MpcException.UnknownAccount -> "unknown account ${e.accountId}; have ${e.available}"
    is MpcException.CosignerUnavailable -> "cosigner unreachable, retry later"
    is MpcException.NoWallet -> "no wallet at ${e.path}"
    is MpcException.WrongPassphrase -> "wrong passphrase"
    is MpcException.PolicyDenied -> "refused by policy ${e.rule}"
    else -> "error: ${e.message}"
}

/** The code of any failure (every subclass carries the same `code`). */
private fun codeOf(e: MpcException): ErrorCode = when (e) {
    is MpcException.Config -> e.code
    is MpcException.Io -> e.code
    is MpcException.WrongPassphrase -> e.code
    is MpcException.CorruptFile -> e.code
    is MpcException.WalletExists -> e.code
    is MpcException.OtherWallet -> e.code
    is MpcException.NoWallet -> e.code
    is MpcException.UnknownAccount -> e.code
    is MpcException.InvalidInput -> e.code
    is MpcException.CosignerUnavailable -> e.code
    is MpcException.Tls -> e.code
    is MpcException.Unauthorized -> e.code
    is MpcException.PolicyDenied -> e.code
    is MpcException.Cosigner -> e.code
    is MpcException.PresignatureUnavailable -> e.code
    is MpcException.GatewayUnavailable -> e.code
    is MpcException.SessionFailed -> e.code
    is MpcException.Timeout -> e.code
    is MpcException.DigestMismatch -> e.code
    is MpcException.VerificationFailed -> e.code
    is MpcException.InvalidResponse -> e.code
    is MpcException.Internal -> e.code
}

private class Recorder : ProgressListener {
    val events = CopyOnWriteArrayList<ProgressEvent>()
    override fun onProgress(event: ProgressEvent) {
        events.add(event)
    }
}

private fun hex(b: ByteArray): String = b.joinToString("") { "%02x".format(it) }

fun main() {
    val accountId = env("WALLET_MPC_TEST_ACCOUNT")
    // A path no other test signs at: no presignature pool can exist there (a signature
    // at a path starts a background refill of that path's pool, and the Python tests
    // share this wallet's files), so this signing is a session whose progress shows.
    val path = env("WALLET_MPC_TEST_PATH")
    val config: MpcConfig = defaultMpcConfig(env("WALLET_MPC_TEST_KEY_SHARES"), env("WALLET_MPC_TEST_PASSPHRASE"))
    config.cosignerUrl = env("WALLET_MPC_TEST_COSIGNER")
    config.insecureFastKdf = true
    config.requestTimeoutSecs = 20uL

    runBlocking {
        val client = newMpcClient(config)

        var address = ""
        check("listAccounts and getPublicKey") {
            runBlocking {
                val accounts = client.listAccounts()
                require(accounts.map { it.accountId } == listOf(accountId)) { "accounts: $accounts" }
                require(accounts[0].kind == AccountKind.HD) { "kind: ${accounts[0].kind}" }
                val pk = client.getPublicKey(accountId, path)
                require(pk.derivationPath == path) { "path: ${pk.derivationPath}" }
                address = pk.ethereumAddress
            }
        }

        check("signMessage with the cosigner, progress reported") {
            runBlocking {
                val progress = Recorder()
                client.setProgressListener(progress)
                val message = "signed from Kotlin".toByteArray()
                val sig = client.signMessage(accountId, path, message)
                client.setProgressListener(null)
                require(sig.v == 27uL || sig.v == 28uL) { "v: ${sig.v}" }
                require(sig.signers.sorted() == listOf(0.toUShort(), 1.toUShort())) { "signers: ${sig.signers}" }
                require(sig.ethereumAddress.equals(address, ignoreCase = true)) { "address: ${sig.ethereumAddress}" }
                require(progress.events.any { it.stage == "sign" && it.finished }) { "progress: ${progress.events}" }
                val preimage = "\u0019Ethereum Signed Message:\n${message.size}".toByteArray() + message
                val recovered = verifyEthereum(preimage, sig.rsv, address)
                require(recovered.equals(address, ignoreCase = true)) { "recovered: $recovered" }
                println("SIGNED {\"message_hex\":\"${hex(message)}\",\"rsv\":\"${sig.rsv}\",\"address\":\"$address\"}")
            }
        }

        check("wrong account throws MpcException.UnknownAccount") {
            runBlocking {
                val thrown: MpcException? = try {
                    client.signMessage("no-such-account", path, "x".toByteArray())
                    null
                } catch (e: MpcException) {
                    e
                }
                require(thrown != null) { "signing with an unknown account succeeded" }
                val text = describe(thrown!!)
                when (thrown) {
                    is MpcException.UnknownAccount -> {
                        require(thrown.code == ErrorCode.UNKNOWN_ACCOUNT) { "code: ${thrown.code}" }
                        require(codeOf(thrown) == ErrorCode.UNKNOWN_ACCOUNT) { "code: ${codeOf(thrown)}" }
                        require(thrown.accountId == "no-such-account") { "accountId: ${thrown.accountId}" }
                        require(thrown.available == listOf(accountId)) { "available: ${thrown.available}" }
                        require(text.startsWith("unknown account")) { text }
                    }
                    else -> throw AssertionError("expected UnknownAccount, got ${thrown::class.qualifiedName}: $text")
                }
            }
        }

        check("wrong passphrase throws MpcException.WrongPassphrase") {
            runBlocking {
                val bad = config.copy(passphrase = "not the passphrase")
                val e = try {
                    newMpcClient(bad).listAccounts()
                    null
                } catch (e: MpcException) {
                    e
                }
                require(e is MpcException.WrongPassphrase) { "got ${e?.let { it::class.qualifiedName }}: $e" }
                require(codeOf(e!!) == ErrorCode.WRONG_PASSPHRASE) { "code: ${codeOf(e)}" }
            }
        }
    }

    println("kotlin: $passed passed, $failed failed")
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}
